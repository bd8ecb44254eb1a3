/* Requests in, replies out: the protocol of docs/serial-protocol.md on top of the model,
 * the stream and the reply cache. One request is handled at a time, in the main loop. */
#include <string.h>

#include "iomt_bytes.h"
#include "iomt_config.h"
#include "iomt_crc16.h"
#include "iomt_errors.h"
#include "iomt_firmware.h"
#include "iomt_frame.h"
#include "iomt_hal.h"
#include "iomt_model.h"
#include "iomt_stream.h"
#include "iomt_training.h"
#include "iomt_tx.h"

enum {
    HELLO = 0x01, INFO = 0x02, ACK = 0x03, NACK = 0x04, ERROR_MSG = 0x05, LOG = 0x06, RESET = 0x07,
    STREAM_START = 0x11, STREAM_STOP = 0x12, LABEL_EVENT = 0x13, LABEL_REQUEST = 0x14,
    INFER_REQUEST = 0x20, INFER_RESULT = 0x21, MODEL_BEGIN = 0x30, MODEL_CHUNK = 0x31,
    MODEL_COMMIT = 0x32, HEAD_GET = 0x40, HEAD_SET = 0x41,
};

static iomt_decoder_t decoder;

static void send_ack(uint8_t seq, uint32_t value) {
    iomt_put_u32(iomt_tx_payload(), value);
    iomt_tx_send(ACK, seq, 4);
}

static void send_error(uint8_t seq, int code) {
    uint8_t *payload = iomt_tx_payload();
    const char *text = iomt_error_message();
    size_t len = strlen(text);
    iomt_put_u16(payload, (uint16_t)code);
    payload[2] = (uint8_t)len;
    memcpy(payload + 3, text, len);
    iomt_tx_send(ERROR_MSG, seq, (uint16_t)(3 + len));
}

static void send_log(uint8_t level, const char *text) {
    uint8_t *payload = iomt_tx_payload();
    size_t len = strlen(text);
    payload[0] = level;
    memcpy(payload + 1, text, len);
    iomt_tx_event(LOG, (uint16_t)(1 + len));
}

static size_t put_text(uint8_t *at, const char *text) {
    size_t len = strlen(text);
    at[0] = (uint8_t)len;
    memcpy(at + 1, text, len);
    return 1 + len;
}

static void send_info(uint8_t seq) {
    uint8_t *p = iomt_tx_payload();
    const iomt_backbone_info *info = iomt_model_info();
    size_t n = put_text(p, iomt_hal_board_name());
    n += put_text(p + n, IOMT_FIRMWARE_VERSION);
    iomt_model_sha256(p + n);
    n += 32;
    iomt_put_u32(p + n, info ? info->arena_bytes : 0);
    iomt_put_u32(p + n + 4, iomt_model_bytes());
    p[n + 8] = 0; /* int8 input */
    iomt_put_u16(p + n + 9, info ? info->time : 0);
    iomt_put_u16(p + n + 11, info ? info->channels : 0);
    iomt_put_u16(p + n + 13, info ? iomt_model_classes() : 0);
    iomt_put_f32(p + n + 15, iomt_hal_sensor_channels() ? iomt_hal_sensor_rate_hz() : 0.0f);
    p[n + 19] = IOMT_TRAINING_VERSION;
    iomt_tx_send(INFO, seq, (uint16_t)(n + 20));
}

static int bad_payload(const char *what) { return iomt_fail(IOMT_E_BAD_PAYLOAD, "%s: bad payload length", what); }

static int on_infer(const iomt_frame_t *frame) {
    const uint8_t *p = frame->payload;
    if (frame->length < 5) return bad_payload("INFER_REQUEST");
    uint16_t time = iomt_get_u16(p + 1), channels = iomt_get_u16(p + 3);
    uint32_t item = p[0] == 0 ? 1 : p[0] == 1 ? 2 : p[0] == 2 ? 4 : 0;
    if (item == 0) return iomt_fail(IOMT_E_BAD_PAYLOAD, "unknown dtype code %u", p[0]);
    if (frame->length != 5u + item * time * channels) return bad_payload("INFER_REQUEST");
    static iomt_infer_result result;
    int status = iomt_model_infer(p[0], time, channels, p + 5, &result);
    if (status != 0) return status;
    uint8_t *out = iomt_tx_payload();
    iomt_put_u16(out, result.predicted_class);
    iomt_put_u32(out + 2, result.latency_us);
    out[6] = 2; /* float32 probabilities from the head */
    iomt_put_u16(out + 7, result.classes);
    for (uint16_t k = 0; k < result.classes; k++) iomt_put_f32(out + 9 + 4 * k, result.scores[k]);
    iomt_tx_send(INFER_RESULT, frame->seq, (uint16_t)(9 + 4 * result.classes));
    return 0;
}

static int on_stream_start(const iomt_frame_t *frame) {
    if (frame->length != 2) return bad_payload("STREAM_START");
    if (iomt_hal_sensor_channels() == 0) return iomt_fail(IOMT_E_NO_MODEL, "this device has no sensors attached");
    iomt_stream_start(iomt_get_u16(frame->payload));
    send_ack(frame->seq, 0);
    return 0;
}

static int on_label_request(const iomt_frame_t *frame) {
    int label = iomt_stream_label();
    if (label < 0) return iomt_fail(IOMT_E_NO_MODEL, "no labelled sensor source");
    send_ack(frame->seq, 0);
    uint8_t *payload = iomt_tx_payload();
    iomt_put_u16(payload, (uint16_t)label);
    iomt_put_u64(payload + 2, iomt_hal_micros());
    iomt_tx_event(LABEL_EVENT, 10);
    return 0;
}

static int on_model_begin(const iomt_frame_t *frame) {
    if (frame->length != 36) return bad_payload("MODEL_BEGIN");
    int status = iomt_model_begin(iomt_get_u32(frame->payload), frame->payload + 4);
    if (status == 0) send_ack(frame->seq, 0);
    return status;
}

static int on_model_chunk(const iomt_frame_t *frame) {
    if (frame->length < 4) return bad_payload("MODEL_CHUNK");
    uint32_t next;
    int status = iomt_model_chunk(iomt_get_u32(frame->payload), frame->payload + 4, frame->length - 4u, &next);
    if (status == 0) send_ack(frame->seq, next);
    return status;
}

static int on_model_commit(const iomt_frame_t *frame) {
    uint32_t size;
    if (frame->length != 0) return bad_payload("MODEL_COMMIT");
    int status = iomt_model_commit(&size);
    if (status != 0) return status;
    send_ack(frame->seq, size);
    send_log(1, "model committed");
    return 0;
}

static int on_head_get(const iomt_frame_t *frame) {
    uint32_t len;
    const uint8_t *head = iomt_model_head(&len);
    if (head == NULL) return iomt_fail(IOMT_E_NO_MODEL, "no head set");
    memcpy(iomt_tx_payload(), head, len);
    iomt_tx_send(HEAD_SET, frame->seq, (uint16_t)len);
    return 0;
}

static int on_head_set(const iomt_frame_t *frame) {
    uint32_t version;
    int status = iomt_model_set_head(frame->payload, frame->length, &version);
    if (status == 0) send_ack(frame->seq, version);
    return status;
}

static int empty_ack(const iomt_frame_t *frame, const char *what) {
    if (frame->length != 0) return bad_payload(what);
    send_ack(frame->seq, 0);
    return 0;
}

/* Run one request; its replies are sent from inside. Returns 0 or an error code to send. */
static int answer(const iomt_frame_t *frame) {
    switch (frame->type) {
    case HELLO:
        if (frame->length != 1) return bad_payload("HELLO");
        send_info(frame->seq);
        return 0;
    case RESET: return empty_ack(frame, "RESET");
    case STREAM_START: return on_stream_start(frame);
    case STREAM_STOP:
        iomt_stream_stop();
        return empty_ack(frame, "STREAM_STOP");
    case LABEL_REQUEST: return on_label_request(frame);
    case INFER_REQUEST: return on_infer(frame);
    case MODEL_BEGIN: return on_model_begin(frame);
    case MODEL_CHUNK: return on_model_chunk(frame);
    case MODEL_COMMIT: return on_model_commit(frame);
    case HEAD_GET: return on_head_get(frame);
    case HEAD_SET: return on_head_set(frame);
    default:
        if (iomt_training_handles(frame->type)) return iomt_training_answer(frame);
        return iomt_fail(IOMT_E_UNKNOWN_TYPE, "unknown type 0x%02x", frame->type);
    }
}

static void handle(const iomt_frame_t *frame) {
    uint16_t crc = iomt_crc16(frame->payload, frame->length);
    if (frame->type == HELLO) iomt_tx_cache_clear(); /* a restarted host starts at seq 0 */
    if (iomt_tx_cache_lookup(frame->seq, frame->type, crc) == 1) return; /* resent, not re-run */
    iomt_tx_cache_begin(frame->seq, frame->type, crc);
    int status = answer(frame);
    if (status != 0) send_error(frame->seq, status);
    iomt_tx_cache_end();
    if (frame->type == RESET && status == 0) iomt_hal_reboot();
}

static void receive(uint8_t byte) {
    iomt_frame_t frame;
    uint32_t errors_before = 0;
    for (int i = 0; i < 6; i++) errors_before += decoder.errors[i];
    if (iomt_decoder_feed(&decoder, byte, &frame)) {
        handle(&frame);
        return;
    }
    uint32_t errors_after = 0;
    for (int i = 0; i < 6; i++) errors_after += decoder.errors[i];
    if (errors_after != errors_before) {
        iomt_tx_payload()[0] = 1; /* bad frame */
        iomt_tx_send(NACK, 0xFF, 1);
    }
}

void iomt_firmware_boot(void) {
    iomt_decoder_init(&decoder);
    iomt_model_boot();
    send_log(2, iomt_model_info() ? "boot: model bound" : "boot: no model");
}

void iomt_firmware_poll(void) {
    int byte;
    while ((byte = iomt_hal_uart_read()) >= 0) receive((uint8_t)byte);
    iomt_stream_poll();
}
