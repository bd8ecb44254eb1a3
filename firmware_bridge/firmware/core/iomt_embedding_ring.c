#include "iomt_embedding_ring.h"

#include <string.h>

#include "iomt_bytes.h"
#include "iomt_hal.h"

static int8_t values[IOMT_RING_BYTES];
static uint8_t labels[IOMT_RING_MAX_ENTRIES];
static iomt_ring_info ring;
static struct {
    uint32_t base, pages;      /* attached region */
    uint32_t page, per_page;   /* page bytes, entries per page; per_page 0: no spill */
} spill;

void iomt_ring_attach_spill(uint32_t base, uint32_t pages) {
    spill.base = base;
    spill.pages = pages;
}

int iomt_ring_reset(uint16_t width, float scale, int32_t zero_point) {
    memset(&ring, 0, sizeof(ring));
    spill.per_page = 0;
    if (width == 0 || width > IOMT_RING_BYTES) return -1;
    ring.width = width;
    ring.scale = scale;
    ring.zero_point = zero_point;
    ring.ram_capacity = IOMT_RING_BYTES / width;
    if (ring.ram_capacity > IOMT_RING_MAX_ENTRIES) ring.ram_capacity = IOMT_RING_MAX_ENTRIES;
    ring.capacity = ring.ram_capacity;
    if (spill.pages >= 2) {
        spill.page = iomt_hal_flash_page_size();
        spill.per_page = spill.page > IOMT_RING_SPILL_HEADER ? (spill.page - IOMT_RING_SPILL_HEADER) / (1u + width) : 0;
        uint32_t total = ring.ram_capacity + (spill.pages - 1) * spill.per_page;
        ring.capacity = total < IOMT_RING_MAX_TOTAL ? total : IOMT_RING_MAX_TOTAL;
        if (ring.capacity < ring.ram_capacity) ring.capacity = ring.ram_capacity;
    }
    return 0;
}

static uint32_t spill_offset(uint32_t seq) {
    uint32_t page = (seq / spill.per_page) % spill.pages;
    return spill.base + page * spill.page + IOMT_RING_SPILL_HEADER + (seq % spill.per_page) * (1u + ring.width);
}

/* Append spilled entry `seq` (the RAM entry in `slot`); a page is erased whole on entering it. */
static int spill_entry(uint32_t seq, uint32_t slot) {
    if (seq % spill.per_page == 0) {
        uint32_t page = spill.base + (seq / spill.per_page) % spill.pages * spill.page;
        uint8_t header[IOMT_RING_SPILL_HEADER];
        memset(header, 0xFF, sizeof(header));
        iomt_put_u32(header, IOMT_RING_SPILL_MAGIC);
        iomt_put_u32(header + 4, seq);
        iomt_put_u16(header + 8, ring.width);
        if (iomt_hal_flash_erase(page, spill.page) != 0 || iomt_hal_flash_write(page, header, sizeof(header)) != 0) {
            return -1;
        }
    }
    uint32_t at = spill_offset(seq);
    if (iomt_hal_flash_write(at, labels + slot, 1) != 0 ||
        iomt_hal_flash_write(at + 1, (const uint8_t *)(values + slot * ring.width), ring.width) != 0) {
        return -1;
    }
    return 0;
}

int iomt_ring_push(const int8_t *embedding, uint8_t label) {
    if (ring.width == 0) return -1;
    int status = 0;
    uint32_t slot = ring.pushed % ring.ram_capacity;
    if (ring.pushed >= ring.ram_capacity && spill.per_page != 0 && spill_entry(ring.pushed - ring.ram_capacity, slot) != 0) {
        spill.per_page = 0; /* RAM only from here: the spilled entries are no longer contiguous */
        ring.capacity = ring.ram_capacity;
        if (ring.count > ring.capacity) ring.count = ring.capacity;
        status = -2;
    }
    memcpy(values + slot * ring.width, embedding, ring.width);
    labels[slot] = label;
    ring.pushed++;
    if (ring.count < ring.capacity) ring.count++;
    return status;
}

const iomt_ring_info *iomt_ring_info_get(void) { return &ring; }

uint8_t iomt_ring_read(uint32_t index, float *out) {
    uint32_t seq = ring.pushed - ring.count + index, in_ram = ring.pushed < ring.ram_capacity ? ring.pushed : ring.ram_capacity;
    const int8_t *q;
    uint8_t label;
    if (seq >= ring.pushed - in_ram) {
        uint32_t slot = seq % ring.ram_capacity;
        q = values + slot * ring.width;
        label = labels[slot];
    } else {
        const uint8_t *entry = iomt_hal_flash_base() + spill_offset(seq);
        label = entry[0];
        q = (const int8_t *)(entry + 1);
    }
    for (uint16_t i = 0; i < ring.width; i++) out[i] = ring.scale * (float)((int32_t)q[i] - ring.zero_point);
    return label;
}
