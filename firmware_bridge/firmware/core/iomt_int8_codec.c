#include "iomt_int8_codec.h"

#include <math.h>
#include <string.h>

static uint32_t index_bytes(uint32_t n) { return n <= 65536u ? 2u : 4u; }

static uint32_t nonzero(const float *values, uint32_t n) {
    uint32_t count = 0;
    for (uint32_t i = 0; i < n; i++) count += values[i] != 0.0f;
    return count;
}

static int is_sparse(uint32_t nonzero_count, uint32_t n) {
    return (uint64_t)nonzero_count * (1u + index_bytes(n)) < (uint64_t)n;
}

uint32_t iomt_int8_record_bytes(const float *values, uint32_t n) {
    uint32_t kept = nonzero(values, n);
    if (!is_sparse(kept, n)) return IOMT_INT8_RECORD_HEADER + n;
    return IOMT_INT8_RECORD_HEADER + kept * (1u + index_bytes(n));
}

static int8_t quantise(double value, double scale, iomt_rng *rng) {
    double scaled = value / scale, rounded;
    if (rng == NULL) {
        rounded = rint(scaled); /* the default rounding mode: half to even, as np.rint */
    } else {
        double below = floor(scaled);
        rounded = below + (iomt_rng_uniform(rng) < scaled - below ? 1.0 : 0.0);
    }
    if (rounded > 127.0) rounded = 127.0;
    if (rounded < -127.0) rounded = -127.0;
    return (int8_t)rounded;
}

static void put_le(uint8_t *at, uint64_t value, int bytes) {
    for (int i = 0; i < bytes; i++) at[i] = (uint8_t)(value >> (8 * i));
}

uint32_t iomt_int8_encode(const float *values, uint32_t n, iomt_rng *rng, uint8_t *out) {
    uint32_t kept = nonzero(values, n), width = index_bytes(n);
    int sparse = is_sparse(kept, n);
    uint32_t count = sparse ? kept : n;
    double peak = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        double magnitude = fabs((double)values[i]);
        peak = magnitude > peak ? magnitude : peak;
    }
    double scale = peak / 127.0;
    uint64_t bits;
    memcpy(&bits, &scale, sizeof(bits));
    out[0] = (uint8_t)(sparse ? (width == 2 ? 1 : 2) : 0);
    put_le(out + 1, bits, 8);
    put_le(out + 9, count, 4);
    uint8_t *indices = out + IOMT_INT8_RECORD_HEADER;
    int8_t *q = (int8_t *)(indices + (sparse ? count * width : 0));
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (sparse && values[i] == 0.0f) continue;
        if (sparse) put_le(indices + k * width, i, (int)width);
        q[k++] = scale == 0.0 ? 0 : quantise((double)values[i], scale, rng);
    }
    return IOMT_INT8_RECORD_HEADER + (sparse ? count * width : 0) + count;
}
