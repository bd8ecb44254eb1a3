/* The labelled embeddings the head trains on: the newest ones in a bounded RAM ring, oldest
 * first, as the Pi's sample store hands them out (`labelled_embeddings(limit)`). Entries are
 * the backbone's int8 outputs with one scale and zero point, dequantised as
 * scale * (q - zero_point) exactly as the Pi dequantises them. When the ring is full the
 * oldest entry is overwritten (no flash spill: IOMT_RING_BYTES is the bound, see
 * docs/serial-protocol.md section 7). */
#ifndef IOMT_EMBEDDING_RING_H
#define IOMT_EMBEDDING_RING_H

#include <stdint.h>

#define IOMT_RING_BYTES 32768u      /* int8 embedding values kept */
#define IOMT_RING_MAX_ENTRIES 1024u /* and at most this many entries */

typedef struct {
    uint16_t width;     /* embedding values per entry */
    float scale;        /* dequantisation of the entries */
    int32_t zero_point;
    uint32_t capacity;  /* entries that fit: min(IOMT_RING_BYTES / width, IOMT_RING_MAX_ENTRIES) */
    uint32_t count;     /* entries held */
    uint32_t pushed;    /* entries ever pushed since the reset */
} iomt_ring_info;

/* Empty the ring for entries of `width` values; -1 when width is 0 or above IOMT_RING_BYTES. */
int iomt_ring_reset(uint16_t width, float scale, int32_t zero_point);
/* Keep one labelled embedding (the oldest goes when full); -1 before a reset. */
int iomt_ring_push(const int8_t *embedding, uint8_t label);
const iomt_ring_info *iomt_ring_info_get(void);
/* Entry `index` in age order (0 = oldest) dequantised into out[width]; returns its label. */
uint8_t iomt_ring_read(uint32_t index, float *out);

#endif
