/* The labelled embeddings the head trains on: the newest ones, oldest first, as the Pi's sample
 * store hands them out (`labelled_embeddings(limit)`). Entries are the backbone's int8 outputs
 * with one scale and zero point, dequantised as scale * (q - zero_point) exactly as the Pi
 * dequantises them. The newest entries live in a RAM ring; when it is full, the entry it
 * overwrites is first appended to a spill region of the flash partition: append-only pages,
 * each erased whole when the spill wraps onto it, starting with a small header (magic, seq of
 * its first entry, width). Entry s (0 = first pushed since the reset) spilled lands in page
 * (s / per_page) % pages at position s % per_page, so reading needs no index. The ring keeps
 * the newest `capacity` entries: the RAM ring plus all spill pages but the one being erased,
 * at most IOMT_RING_MAX_TOTAL (docs/serial-protocol.md section 7). */
#ifndef IOMT_EMBEDDING_RING_H
#define IOMT_EMBEDDING_RING_H

#include <stdint.h>

#define IOMT_RING_BYTES 32768u       /* int8 embedding values kept in RAM */
#define IOMT_RING_MAX_ENTRIES 1024u  /* and at most this many entries in RAM */
#define IOMT_RING_MAX_TOTAL 4096u    /* entries kept, RAM and flash together */
#define IOMT_RING_SPILL_PAGES 8u     /* flash pages of the spill region (32 KiB of 4 KiB pages) */
#define IOMT_RING_SPILL_HEADER 12u   /* magic u32 | first seq u32 | width u16 | 0xFFFF */
#define IOMT_RING_SPILL_MAGIC 0x4c505349u /* "ISPL" */

typedef struct {
    uint16_t width;        /* embedding values per entry */
    float scale;           /* dequantisation of the entries */
    int32_t zero_point;
    uint32_t ram_capacity; /* entries in RAM: min(IOMT_RING_BYTES / width, IOMT_RING_MAX_ENTRIES) */
    uint32_t capacity;     /* entries kept: RAM + (spill pages - 1) * per page, <= IOMT_RING_MAX_TOTAL */
    uint32_t count;        /* entries held: min(pushed, capacity) */
    uint32_t pushed;       /* entries ever pushed since the reset */
} iomt_ring_info;

/* Give the ring `pages` flash pages from partition offset `base` (page aligned) to spill to;
 * 0 or 1 page: RAM only. Takes effect at the next reset. */
void iomt_ring_attach_spill(uint32_t base, uint32_t pages);
/* Empty the ring for entries of `width` values; -1 when width is 0 or above IOMT_RING_BYTES. */
int iomt_ring_reset(uint16_t width, float scale, int32_t zero_point);
/* Keep one labelled embedding (the oldest goes when full); -1 before a reset, -2 when the flash
 * refused the spill (the ring is RAM only from then until the next reset). */
int iomt_ring_push(const int8_t *embedding, uint8_t label);
const iomt_ring_info *iomt_ring_info_get(void);
/* Entry `index` in age order (0 = oldest) dequantised into out[width]; returns its label. */
uint8_t iomt_ring_read(uint32_t index, float *out);

#endif
