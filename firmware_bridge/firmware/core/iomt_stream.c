#include "iomt_stream.h"

#include <string.h>

#include "iomt_bytes.h"
#include "iomt_hal.h"
#include "iomt_tx.h"

#define TYPE_SENSOR_FRAME 0x10
#define TYPE_LABEL_EVENT 0x13
#define SENSOR_HEADER 12 /* timestamp u64, dtype u8, samples u16, channels u8 */

static struct {
    int active;
    uint16_t per_frame;
    uint16_t pending;  /* samples waiting in the frame being built */
    uint64_t started_us;
    uint64_t sent;     /* samples sent (or waiting) since STREAM_START */
} stream;
static int last_label = -1;
/* samples of the frame being built (the transmit buffer is shared with replies) */
static uint8_t samples[4u * IOMT_STREAM_MAX_SAMPLES * IOMT_MAX_CHANNELS];

static uint64_t sample_time_us(uint64_t index) {
    return stream.started_us + (uint64_t)((double)index * 1e6 / (double)iomt_hal_sensor_rate_hz() + 0.5);
}

void iomt_stream_start(uint16_t samples_per_frame) {
    if (samples_per_frame == 0) samples_per_frame = IOMT_STREAM_DEFAULT_SAMPLES;
    stream.per_frame = samples_per_frame > IOMT_STREAM_MAX_SAMPLES ? IOMT_STREAM_MAX_SAMPLES : samples_per_frame;
    stream.pending = 0;
    stream.sent = 0;
    stream.started_us = iomt_hal_micros();
    stream.active = 1;
}

void iomt_stream_stop(void) { stream.active = 0; }

int iomt_stream_label(void) { return last_label; }

static void flush_frame(void) {
    if (stream.pending == 0) return;
    uint8_t *payload = iomt_tx_payload();
    uint16_t channels = iomt_hal_sensor_channels();
    iomt_put_u64(payload, sample_time_us(stream.sent - stream.pending));
    payload[8] = 2; /* float32 */
    iomt_put_u16(payload + 9, stream.pending);
    payload[11] = (uint8_t)channels;
    memcpy(payload + SENSOR_HEADER, samples, 4u * stream.pending * channels);
    iomt_tx_event(TYPE_SENSOR_FRAME, (uint16_t)(SENSOR_HEADER + 4u * stream.pending * channels));
    stream.pending = 0;
}

static void add_sample(const iomt_sensor_event *event) {
    uint16_t channels = iomt_hal_sensor_channels();
    uint8_t *at = samples + 4u * stream.pending * channels;
    for (uint16_t c = 0; c < channels; c++) iomt_put_f32(at + 4u * c, event->values[c]);
    stream.pending++;
    stream.sent++;
    if (stream.pending == stream.per_frame) flush_frame();
}

static void press(uint16_t label) {
    flush_frame(); /* a frame never straddles a label change */
    uint8_t *payload = iomt_tx_payload();
    iomt_put_u16(payload, label);
    iomt_put_u64(payload + 2, sample_time_us(stream.sent));
    iomt_tx_event(TYPE_LABEL_EVENT, 10);
}

void iomt_stream_poll(void) {
    iomt_sensor_event event;
    iomt_sensor_kind kind;
    while ((kind = iomt_hal_sensor_poll(&event)) != IOMT_SENSOR_NONE) {
        if (kind == IOMT_SENSOR_BUTTON) {
            last_label = event.label;
            if (stream.active) press(event.label);
        } else if (stream.active) {
            add_sample(&event);
        }
    }
}
