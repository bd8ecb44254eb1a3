#include "iomt_training.h"

#include <math.h>
#include <string.h>

#include "iomt_bytes.h"
#include "iomt_embedding_ring.h"
#include "iomt_errors.h"
#include "iomt_head_train.h"
#include "iomt_int8_codec.h"
#include "iomt_model.h"
#include "iomt_tx.h"

#define ACK_TYPE 0x03
#define ROUND_BYTES 38 /* TRAIN_ROUND payload */

static struct {
    int ready;               /* a delta waits to be read */
    uint32_t round_id, records_bytes, params;
} last;

static void send_ack(uint8_t seq, uint32_t value) {
    iomt_put_u32(iomt_tx_payload(), value);
    iomt_tx_send(ACK_TYPE, seq, 4);
}

static int bad_payload(const char *what) { return iomt_fail(IOMT_E_BAD_PAYLOAD, "%s: bad payload length", what); }

static int on_embed_reset(const iomt_frame_t *frame) {
    const uint8_t *p = frame->payload;
    if (frame->length != 10) return bad_payload("EMBED_RESET");
    if (iomt_ring_reset(iomt_get_u16(p), iomt_get_f32(p + 2), (int32_t)iomt_get_u32(p + 6)) != 0) {
        return iomt_fail(IOMT_E_TOO_LARGE, "embeddings of %u values do not fit the ring", iomt_get_u16(p));
    }
    send_ack(frame->seq, iomt_ring_info_get()->capacity);
    return 0;
}

static int on_embed_push(const iomt_frame_t *frame) {
    const iomt_ring_info *ring = iomt_ring_info_get();
    if (frame->length < 2) return bad_payload("EMBED_PUSH");
    uint16_t count = iomt_get_u16(frame->payload);
    if (ring->width == 0) return iomt_fail(IOMT_E_NO_MODEL, "no ring (send EMBED_RESET)");
    if (frame->length != 2u + (uint32_t)count * (1u + ring->width)) return bad_payload("EMBED_PUSH");
    for (uint32_t n = 0; n < count; n++) {
        const uint8_t *entry = frame->payload + 2 + n * (1u + ring->width);
        iomt_ring_push((const int8_t *)(entry + 1), entry[0]);
    }
    send_ack(frame->seq, ring->count);
    return 0;
}

static int on_infer_label(const iomt_frame_t *frame) {
    const iomt_backbone_info *info = iomt_model_info();
    const int8_t *embedding = iomt_model_last_embedding();
    const iomt_ring_info *ring = iomt_ring_info_get();
    if (frame->length != 1) return bad_payload("INFER_LABEL");
    if (info == NULL || embedding == NULL) return iomt_fail(IOMT_E_NO_MODEL, "no inference to label since boot");
    if (ring->width != info->embedding_len || ring->scale != info->output_scale ||
        ring->zero_point != info->output_zero_point) { /* the backbone's embeddings start a ring */
        if (iomt_ring_reset((uint16_t)info->embedding_len, info->output_scale, info->output_zero_point) != 0) {
            return iomt_fail(IOMT_E_TOO_LARGE, "the backbone's embeddings do not fit the ring");
        }
    }
    iomt_ring_push(embedding, frame->payload[0]);
    send_ack(frame->seq, ring->count);
    return 0;
}

static void read_settings(const uint8_t *p, iomt_fit_settings *fit) {
    fit->epochs = iomt_get_u16(p + 9);
    fit->batch_size = iomt_get_u16(p + 11);
    fit->learning_rate = iomt_get_f32(p + 13);
    fit->momentum = iomt_get_f32(p + 17);
    fit->l2 = iomt_get_f32(p + 21);
    fit->proximal_mu = iomt_get_f32(p + 25);
    fit->seed = (uint64_t)iomt_get_u32(p + 29) | ((uint64_t)iomt_get_u32(p + 33) << 32);
}

static int train_failed(int status) {
    switch (status) {
    case IOMT_TRAIN_NO_DATA: return iomt_fail(IOMT_E_NO_MODEL, "no labelled embeddings to train on");
    case IOMT_TRAIN_SHAPE: return iomt_fail(IOMT_E_SHAPE_MISMATCH, "embeddings or labels do not fit the head");
    case IOMT_TRAIN_TOO_LARGE:
        return iomt_fail(IOMT_E_TOO_LARGE, "head exceeds the %u parameters the trainer holds", IOMT_TRAIN_MAX_PARAMS);
    default: return iomt_fail(IOMT_E_BAD_PAYLOAD, "batch_size must be >= 1 and learning_rate > 0");
    }
}

/* The int8 records of the four delta tensors into the trainer's scratch; their size. */
static int encode_delta(uint64_t seed, int stochastic, uint32_t *bytes) {
    uint32_t room, at = 0;
    uint8_t *out = iomt_train_scratch(&room);
    iomt_rng rng;
    iomt_rng_seed(&rng, seed); /* the codec's stream starts again from the seed, as on the Pi */
    for (uint8_t t = 0; t < 4; t++) {
        uint32_t n;
        const float *delta = iomt_train_delta(t, &n);
        for (uint32_t i = 0; i < n; i++) {
            if (!isfinite(delta[i])) return iomt_fail(IOMT_E_INVOKE_FAILED, "training diverged (delta not finite)");
        }
        if (at + iomt_int8_record_bytes(delta, n) > room) return iomt_fail(IOMT_E_TOO_LARGE, "delta record too large");
        at += iomt_int8_encode(delta, n, stochastic ? &rng : NULL, out + at);
    }
    *bytes = at;
    return 0;
}

static int on_train_round(const iomt_frame_t *frame) {
    const uint8_t *p = frame->payload;
    if (frame->length != ROUND_BYTES) return bad_payload("TRAIN_ROUND");
    if (p[0] != IOMT_TRAINING_VERSION) {
        return iomt_fail(IOMT_E_BAD_PAYLOAD, "training version %u, this firmware speaks %u", p[0], IOMT_TRAINING_VERSION);
    }
    const iomt_head *head = iomt_model_current_head();
    uint32_t round_id = iomt_get_u32(p + 1), version = iomt_get_u32(p + 5);
    if (head == NULL) return iomt_fail(IOMT_E_NO_MODEL, "no head set (send the global head with HEAD_SET)");
    if (head->version != version) {
        return iomt_fail(IOMT_E_SHAPE_MISMATCH, "round is on head %lu, the device holds %lu", (unsigned long)version,
                         (unsigned long)head->version);
    }
    iomt_fit_settings fit;
    read_settings(p, &fit);
    iomt_train_result result;
    last.ready = 0;
    int status = iomt_train_run(head, &fit, &result);
    if (status != IOMT_TRAIN_OK) return train_failed(status);
    status = encode_delta(fit.seed, p[37], &last.records_bytes);
    if (status != 0) return status;
    last.ready = 1;
    last.round_id = round_id;
    last.params = result.params;
    uint8_t *out = iomt_tx_payload();
    iomt_put_u32(out, round_id);
    iomt_put_u32(out + 4, result.num_examples);
    iomt_put_f32(out + 8, result.loss);
    iomt_put_u32(out + 12, result.params);
    iomt_put_u32(out + 16, last.records_bytes);
    iomt_tx_send(IOMT_TRAIN_RESULT, frame->seq, 20);
    return 0;
}

static int on_delta_read(const iomt_frame_t *frame) {
    const uint8_t *p = frame->payload;
    if (frame->length != 11) return bad_payload("DELTA_READ");
    uint32_t round_id = iomt_get_u32(p), offset = iomt_get_u32(p + 5), length = iomt_get_u16(p + 9), room;
    if (!last.ready || last.round_id != round_id) return iomt_fail(IOMT_E_NO_MODEL, "no delta of round %lu", (unsigned long)round_id);
    if (p[4] > 1) return iomt_fail(IOMT_E_BAD_PAYLOAD, "delta form %u (0 int8 records, 1 float32)", p[4]);
    const uint8_t *source = p[4] == 0 ? iomt_train_scratch(&room) : (const uint8_t *)iomt_train_delta(0, &room);
    uint32_t size = p[4] == 0 ? last.records_bytes : 4u * last.params;
    if (offset > size) return iomt_fail(IOMT_E_BAD_OFFSET, "offset %lu past the delta's %lu B", (unsigned long)offset, (unsigned long)size);
    if (length > size - offset) length = size - offset;
    if (length > IOMT_MAX_PAYLOAD - 4u) length = IOMT_MAX_PAYLOAD - 4u;
    uint8_t *out = iomt_tx_payload();
    iomt_put_u32(out, offset);
    memcpy(out + 4, source + offset, length);
    iomt_tx_send(IOMT_DELTA_CHUNK, frame->seq, (uint16_t)(4 + length));
    return 0;
}

int iomt_training_handles(uint8_t type) {
    return type == IOMT_EMBED_RESET || type == IOMT_EMBED_PUSH || type == IOMT_INFER_LABEL ||
           type == IOMT_TRAIN_ROUND || type == IOMT_DELTA_READ;
}

int iomt_training_answer(const iomt_frame_t *frame) {
    switch (frame->type) {
    case IOMT_EMBED_RESET: return on_embed_reset(frame);
    case IOMT_EMBED_PUSH: return on_embed_push(frame);
    case IOMT_INFER_LABEL: return on_infer_label(frame);
    case IOMT_TRAIN_ROUND: return on_train_round(frame);
    default: return on_delta_read(frame);
    }
}
