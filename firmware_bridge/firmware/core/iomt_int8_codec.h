/* The int8 tensor codec of fleet_protocol.tensor_codecs (encode_tensor with codec "int8"), so
 * a delta the firmware sends decodes as the Pi's would:
 *   - sparse layout (indices of the non-zero floats, u16 up to 65,536 elements, else u32)
 *     when nonzero * (1 + index bytes) < elements, else dense;
 *   - scale = max|x| / 127 in double; q = x / scale rounded (stochastically with the rng:
 *     floor + (uniform < fraction), one draw per value in order; half to even without one),
 *     clipped to +-127; no draw at all when the scale is 0.
 * Record written:  layout u8 (0 dense, 1 sparse u16, 2 sparse u32), scale f64, count u32,
 *                  [indices x count], values i8 x count  (little-endian). */
#ifndef IOMT_INT8_CODEC_H
#define IOMT_INT8_CODEC_H

#include <stdint.h>

#include "iomt_rng.h"

#define IOMT_INT8_RECORD_HEADER 13u

/* Bytes the record of `n` values will take, at most IOMT_INT8_RECORD_HEADER + n (+ sparse
 * indices, which are only chosen when smaller). */
uint32_t iomt_int8_record_bytes(const float *values, uint32_t n);
/* Encode `n` floats into out (iomt_int8_record_bytes of them); rng NULL rounds half to even. */
uint32_t iomt_int8_encode(const float *values, uint32_t n, iomt_rng *rng, uint8_t *out);

#endif
