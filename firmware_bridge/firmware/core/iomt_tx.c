#include "iomt_tx.h"

#include <string.h>

#include "iomt_crc16.h"
#include "iomt_frame.h"
#include "iomt_hal.h"

static uint8_t raw[IOMT_MAX_RAW];
static uint8_t event_seq;

static struct {
    int valid, recording, overflowed;
    uint8_t seq, type;
    uint16_t crc;
    uint16_t length;
    uint8_t wire[IOMT_REPLY_CACHE_BYTES];
} cache;

uint8_t *iomt_tx_payload(void) { return raw + IOMT_HEADER_SIZE; }

static void emit(const uint8_t *data, size_t len) {
    iomt_hal_uart_write(data, len);
    if (!cache.recording) return;
    if (cache.overflowed || cache.length + len > sizeof(cache.wire)) {
        cache.overflowed = 1;
        return;
    }
    memcpy(cache.wire + cache.length, data, len);
    cache.length = (uint16_t)(cache.length + len);
}

/* COBS as iomt_cobs_encode does it, one block (code byte + up to 254 bytes) at a time. */
static void emit_cobs(const uint8_t *src, size_t len) {
    uint8_t block[255];
    size_t count = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == 0) {
            block[0] = (uint8_t)(count + 1);
            emit(block, count + 1);
            count = 0;
            continue;
        }
        block[++count] = src[i];
        if (count == 254) {
            block[0] = 0xFF;
            emit(block, 255);
            count = 0;
            if (i + 1 == len) return; /* a full block at the very end needs no final code */
        }
    }
    block[0] = (uint8_t)(count + 1);
    emit(block, count + 1);
}

void iomt_tx_send(uint8_t type, uint8_t seq, uint16_t length) {
    raw[0] = IOMT_PROTOCOL_VERSION;
    raw[1] = type;
    raw[2] = seq;
    raw[3] = (uint8_t)length;
    raw[4] = (uint8_t)(length >> 8);
    uint16_t crc = iomt_crc16(raw, IOMT_HEADER_SIZE + (size_t)length);
    raw[IOMT_HEADER_SIZE + length] = (uint8_t)crc;
    raw[IOMT_HEADER_SIZE + length + 1] = (uint8_t)(crc >> 8);
    static const uint8_t delimiter = 0x00;
    emit_cobs(raw, IOMT_HEADER_SIZE + (size_t)length + IOMT_CRC_SIZE);
    emit(&delimiter, 1);
}

void iomt_tx_event(uint8_t type, uint16_t length) { iomt_tx_send(type, event_seq++, length); }

void iomt_tx_cache_begin(uint8_t seq, uint8_t type, uint16_t crc) {
    cache.valid = 1;
    cache.recording = 1;
    cache.overflowed = 0;
    cache.seq = seq;
    cache.type = type;
    cache.crc = crc;
    cache.length = 0;
}

void iomt_tx_cache_end(void) { cache.recording = 0; }

int iomt_tx_cache_lookup(uint8_t seq, uint8_t type, uint16_t crc) {
    if (!cache.valid || cache.seq != seq || cache.type != type || cache.crc != crc) return 0;
    if (cache.overflowed) return -1;
    iomt_hal_uart_write(cache.wire, cache.length);
    return 1;
}

void iomt_tx_cache_clear(void) { cache.valid = 0; }
