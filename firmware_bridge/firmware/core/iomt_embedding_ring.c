#include "iomt_embedding_ring.h"

#include <string.h>

static int8_t values[IOMT_RING_BYTES];
static uint8_t labels[IOMT_RING_MAX_ENTRIES];
static iomt_ring_info ring;

int iomt_ring_reset(uint16_t width, float scale, int32_t zero_point) {
    memset(&ring, 0, sizeof(ring));
    if (width == 0 || width > IOMT_RING_BYTES) return -1;
    ring.width = width;
    ring.scale = scale;
    ring.zero_point = zero_point;
    ring.capacity = IOMT_RING_BYTES / width;
    if (ring.capacity > IOMT_RING_MAX_ENTRIES) ring.capacity = IOMT_RING_MAX_ENTRIES;
    return 0;
}

static uint32_t slot_of(uint32_t index) {
    uint32_t oldest = ring.pushed - ring.count; /* entries ever pushed before the oldest kept */
    return (oldest + index) % ring.capacity;
}

int iomt_ring_push(const int8_t *embedding, uint8_t label) {
    if (ring.width == 0) return -1;
    uint32_t slot = ring.pushed % ring.capacity;
    memcpy(values + (uint32_t)slot * ring.width, embedding, ring.width);
    labels[slot] = label;
    ring.pushed++;
    if (ring.count < ring.capacity) ring.count++;
    return 0;
}

const iomt_ring_info *iomt_ring_info_get(void) { return &ring; }

uint8_t iomt_ring_read(uint32_t index, float *out) {
    uint32_t slot = slot_of(index);
    const int8_t *q = values + slot * ring.width;
    for (uint16_t i = 0; i < ring.width; i++) out[i] = ring.scale * (float)((int32_t)q[i] - ring.zero_point);
    return labels[slot];
}
