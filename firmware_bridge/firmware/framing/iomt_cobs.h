/* Consistent Overhead Byte Stuffing, byte-compatible with the Python `cobs` package. */
#ifndef IOMT_COBS_H
#define IOMT_COBS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Worst-case encoded size of `len` input bytes (no delimiter). */
#define IOMT_COBS_MAX_ENCODED(len) ((len) + (len) / 254 + 1)

/* Encode `len` bytes of `src` into `dst` (no 0x00 inside, no delimiter added).
 * `dst` must hold IOMT_COBS_MAX_ENCODED(len) bytes. Returns the encoded length. */
size_t iomt_cobs_encode(const uint8_t *src, size_t len, uint8_t *dst);

/* Decode `len` bytes (without the delimiter) into `dst`; `dst` may equal `src`.
 * Returns the decoded length, or -1 when the input is not valid COBS. */
long iomt_cobs_decode(const uint8_t *src, size_t len, uint8_t *dst);

#ifdef __cplusplus
}
#endif

#endif
