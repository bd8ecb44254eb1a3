#include "iomt_rng.h"

void iomt_rng_seed(iomt_rng *rng, uint64_t seed) { rng->state = seed; }

uint64_t iomt_rng_next(iomt_rng *rng) {
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double iomt_rng_uniform(iomt_rng *rng) { return (double)(iomt_rng_next(rng) >> 11) * 0x1.0p-53; }

void iomt_rng_permutation(iomt_rng *rng, uint16_t *order, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) order[i] = (uint16_t)i;
    for (uint32_t i = n; i-- > 1;) {
        uint32_t j = (uint32_t)(iomt_rng_next(rng) % (uint64_t)(i + 1));
        uint16_t kept = order[i];
        order[i] = order[j];
        order[j] = kept;
    }
}
