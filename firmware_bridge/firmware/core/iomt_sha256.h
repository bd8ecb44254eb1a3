/* SHA-256 (FIPS 180-4), streaming: the model image is hashed where it lies in flash. */
#ifndef IOMT_SHA256_H
#define IOMT_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t state[8];
    uint64_t length; /* bytes hashed so far */
    uint8_t block[64];
    size_t used;     /* bytes waiting in `block` */
} iomt_sha256_t;

void iomt_sha256_init(iomt_sha256_t *ctx);
void iomt_sha256_update(iomt_sha256_t *ctx, const uint8_t *data, size_t len);
void iomt_sha256_final(iomt_sha256_t *ctx, uint8_t digest[32]);
void iomt_sha256(const uint8_t *data, size_t len, uint8_t digest[32]);

#ifdef __cplusplus
}
#endif

#endif
