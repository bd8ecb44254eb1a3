#include "iomt_frame.h"

#include <string.h>

#include "iomt_crc16.h"

static uint8_t scratch[IOMT_MAX_RAW];

size_t iomt_frame_encode(uint8_t type, uint8_t seq, const uint8_t *payload, uint16_t length,
                         uint8_t *out, size_t out_capacity) {
    if (length > IOMT_MAX_PAYLOAD) {
        return 0;
    }
    size_t raw_length = IOMT_HEADER_SIZE + (size_t)length + IOMT_CRC_SIZE;
    if (out_capacity < IOMT_COBS_MAX_ENCODED(raw_length) + 1) {
        return 0;
    }
    scratch[0] = IOMT_PROTOCOL_VERSION;
    scratch[1] = type;
    scratch[2] = seq;
    scratch[3] = (uint8_t)(length & 0xFF);
    scratch[4] = (uint8_t)(length >> 8);
    if (length) {
        memcpy(scratch + IOMT_HEADER_SIZE, payload, length);
    }
    uint16_t crc = iomt_crc16(scratch, IOMT_HEADER_SIZE + length);
    scratch[IOMT_HEADER_SIZE + length] = (uint8_t)(crc & 0xFF);
    scratch[IOMT_HEADER_SIZE + length + 1] = (uint8_t)(crc >> 8);
    size_t encoded = iomt_cobs_encode(scratch, raw_length, out);
    out[encoded] = 0x00;
    return encoded + 1;
}

iomt_status_t iomt_frame_parse(uint8_t *encoded, size_t len, iomt_frame_t *frame) {
    long raw_length = iomt_cobs_decode(encoded, len, encoded);
    if (raw_length < 0) {
        return IOMT_ERR_COBS;
    }
    if (raw_length < IOMT_HEADER_SIZE + IOMT_CRC_SIZE) {
        return IOMT_ERR_LENGTH;
    }
    uint16_t length = (uint16_t)(encoded[3] | (encoded[4] << 8));
    if (length > IOMT_MAX_PAYLOAD ||
        (size_t)raw_length != IOMT_HEADER_SIZE + (size_t)length + IOMT_CRC_SIZE) {
        return IOMT_ERR_LENGTH;
    }
    uint16_t received = (uint16_t)(encoded[raw_length - 2] | (encoded[raw_length - 1] << 8));
    if (received != iomt_crc16(encoded, (size_t)raw_length - IOMT_CRC_SIZE)) {
        return IOMT_ERR_CRC;
    }
    if (encoded[0] != IOMT_PROTOCOL_VERSION) {
        return IOMT_ERR_VERSION;
    }
    frame->version = encoded[0];
    frame->type = encoded[1];
    frame->seq = encoded[2];
    frame->length = length;
    frame->payload = encoded + IOMT_HEADER_SIZE;
    return IOMT_OK;
}

void iomt_decoder_init(iomt_decoder_t *decoder) {
    memset(decoder, 0, sizeof(*decoder));
}

int iomt_decoder_feed(iomt_decoder_t *decoder, uint8_t byte, iomt_frame_t *frame) {
    if (byte != 0x00) {
        if (decoder->discarding) {
            return 0;
        }
        if (decoder->length >= IOMT_MAX_ENCODED) {
            decoder->errors[IOMT_ERR_OVERSIZE]++;
            decoder->length = 0;
            decoder->discarding = 1;
            return 0;
        }
        decoder->buffer[decoder->length++] = byte;
        return 0;
    }
    size_t length = decoder->length;
    int was_discarding = decoder->discarding;
    decoder->length = 0;
    decoder->discarding = 0;
    if (was_discarding || length == 0) {
        return 0;
    }
    iomt_status_t status = iomt_frame_parse(decoder->buffer, length, frame);
    if (status != IOMT_OK) {
        decoder->errors[status]++;
        return 0;
    }
    decoder->frames++;
    return 1;
}
