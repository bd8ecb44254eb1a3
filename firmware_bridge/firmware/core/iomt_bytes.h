/* Little-endian field access on byte buffers (payloads, flash records): no alignment needed. */
#ifndef IOMT_BYTES_H
#define IOMT_BYTES_H

#include <stdint.h>
#include <string.h>

static inline uint16_t iomt_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static inline uint32_t iomt_get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline float iomt_get_f32(const uint8_t *p) {
    uint32_t bits = iomt_get_u32(p);
    float value;
    memcpy(&value, &bits, sizeof(value));
    return value;
}

static inline void iomt_put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void iomt_put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline void iomt_put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline void iomt_put_f32(uint8_t *p, float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof(bits));
    iomt_put_u32(p, bits);
}

#endif
