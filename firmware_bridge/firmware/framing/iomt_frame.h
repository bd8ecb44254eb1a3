/* IoMT bridge frames: version u8 | type u8 | seq u8 | length u16 LE | payload | crc16 u16 LE,
 * COBS-encoded and terminated by 0x00. See docs/serial-protocol.md. */
#ifndef IOMT_FRAME_H
#define IOMT_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "iomt_cobs.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IOMT_PROTOCOL_VERSION 1
#define IOMT_HEADER_SIZE 5
#define IOMT_CRC_SIZE 2
#ifndef IOMT_MAX_PAYLOAD
#define IOMT_MAX_PAYLOAD 16384
#endif
#define IOMT_MAX_RAW (IOMT_HEADER_SIZE + IOMT_MAX_PAYLOAD + IOMT_CRC_SIZE)
#define IOMT_MAX_ENCODED IOMT_COBS_MAX_ENCODED(IOMT_MAX_RAW)

typedef enum {
    IOMT_OK = 0,
    IOMT_ERR_COBS = 1,
    IOMT_ERR_LENGTH = 2,
    IOMT_ERR_CRC = 3,
    IOMT_ERR_VERSION = 4,
    IOMT_ERR_OVERSIZE = 5,
} iomt_status_t;

typedef struct {
    uint8_t version;
    uint8_t type;
    uint8_t seq;
    uint16_t length;
    const uint8_t *payload; /* points into the decoder's buffer until the next feed */
} iomt_frame_t;

/* Build a frame into `out` (COBS + delimiter). Returns bytes written, 0 if it does not fit. */
size_t iomt_frame_encode(uint8_t type, uint8_t seq, const uint8_t *payload, uint16_t length,
                         uint8_t *out, size_t out_capacity);

/* Parse one frame from COBS bytes without delimiter, decoding in place in `encoded`. */
iomt_status_t iomt_frame_parse(uint8_t *encoded, size_t len, iomt_frame_t *frame);

typedef struct {
    uint8_t buffer[IOMT_MAX_ENCODED];
    size_t length;
    int discarding;
    uint32_t frames;
    uint32_t errors[6]; /* indexed by iomt_status_t */
} iomt_decoder_t;

void iomt_decoder_init(iomt_decoder_t *decoder);

/* Feed one received byte. Returns 1 and fills `frame` when it completes a valid frame;
 * damaged frames are counted in `errors`, never reported otherwise. */
int iomt_decoder_feed(iomt_decoder_t *decoder, uint8_t byte, iomt_frame_t *frame);

#ifdef __cplusplus
}
#endif

#endif
