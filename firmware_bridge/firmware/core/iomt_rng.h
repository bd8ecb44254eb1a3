/* SplitMix64: the random stream the firmware shares with fleet_protocol.portable_rng, so a
 * shuffle or a stochastic rounding drawn here equals the Pi's for the same seed. */
#ifndef IOMT_RNG_H
#define IOMT_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t state;
} iomt_rng;

void iomt_rng_seed(iomt_rng *rng, uint64_t seed);
uint64_t iomt_rng_next(iomt_rng *rng);
/* A double in [0, 1): the top 53 bits of the next draw times 2^-53. */
double iomt_rng_uniform(iomt_rng *rng);
/* order[0..n) = 0..n-1 shuffled by Fisher-Yates from the end, j = draw % (i + 1). */
void iomt_rng_permutation(iomt_rng *rng, uint16_t *order, uint32_t n);

#endif
