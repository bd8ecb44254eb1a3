/* Two-slot flash records (see iomt_slots.h). Header layout at the start of a slot:
 * magic u32 | kind u32 | seq u32 | size u32 | sha256[32] | crc16 u16 | 0xFF.. | commit u32 @60. */
#include "iomt_slots.h"

#include <string.h>

#include "iomt_bytes.h"
#include "iomt_crc16.h"
#include "iomt_hal.h"
#include "iomt_sha256.h"

#define COMMIT_OFFSET 60u
#define CRC_OFFSET 48u

static uint32_t slot_offset(const iomt_slots *slots, int slot) {
    return slots->base + (uint32_t)slot * slots->slot_size;
}

static const uint8_t *slot_bytes(const iomt_slots *slots, int slot) {
    return iomt_hal_flash_base() + slot_offset(slots, slot);
}

void iomt_slots_init(iomt_slots *slots, uint32_t base, uint32_t slot_size, uint32_t kind) {
    memset(slots, 0, sizeof(*slots));
    slots->base = base;
    slots->slot_size = slot_size;
    slots->kind = kind;
    slots->current = -1;
}

uint32_t iomt_slots_capacity(const iomt_slots *slots) { return slots->slot_size - IOMT_RECORD_HEADER; }

static int header_valid(const iomt_slots *slots, const uint8_t *header) {
    if (iomt_get_u32(header) != IOMT_RECORD_MAGIC || iomt_get_u32(header + 4) != slots->kind ||
        iomt_get_u32(header + COMMIT_OFFSET) != IOMT_RECORD_COMMITTED) {
        return 0;
    }
    if (iomt_get_u16(header + CRC_OFFSET) != iomt_crc16(header, CRC_OFFSET)) return 0;
    return iomt_get_u32(header + 12) <= iomt_slots_capacity(slots);
}

static int data_matches(const uint8_t *header) {
    uint8_t digest[32];
    iomt_sha256(header + IOMT_RECORD_HEADER, iomt_get_u32(header + 12), digest);
    return memcmp(digest, header + 16, 32) == 0;
}

void iomt_slots_mount(iomt_slots *slots, int skip) {
    slots->current = -1;
    for (int slot = 0; slot < 2; slot++) {
        const uint8_t *header = slot_bytes(slots, slot);
        if (slot == skip || !header_valid(slots, header) || !data_matches(header)) continue;
        uint32_t seq = iomt_get_u32(header + 8);
        if (slots->current < 0 || (int32_t)(seq - slots->seq) > 0) {
            slots->current = slot;
            slots->seq = seq;
        }
    }
}

const uint8_t *iomt_slots_data(const iomt_slots *slots, uint32_t *size) {
    if (slots->current < 0) {
        *size = 0;
        return NULL;
    }
    const uint8_t *header = slot_bytes(slots, slots->current);
    *size = iomt_get_u32(header + 12);
    return header + IOMT_RECORD_HEADER;
}

const uint8_t *iomt_slots_sha256(const iomt_slots *slots) {
    return slots->current < 0 ? NULL : slot_bytes(slots, slots->current) + 16;
}

static int idle_slot(const iomt_slots *slots) { return slots->current == 0 ? 1 : 0; }

static int erase_to(iomt_slots *slots, uint32_t end) {
    uint32_t page = iomt_hal_flash_page_size();
    while (slots->erased < end) {
        if (iomt_hal_flash_erase(slot_offset(slots, idle_slot(slots)) + slots->erased, page) != 0) {
            return IOMT_SLOTS_FLASH;
        }
        slots->erased += page;
    }
    return IOMT_SLOTS_OK;
}

int iomt_slots_begin(iomt_slots *slots, uint32_t size, const uint8_t sha256[32]) {
    slots->staging = 0;
    if (size > iomt_slots_capacity(slots)) return IOMT_SLOTS_TOO_LARGE;
    slots->size = size;
    slots->written = 0;
    slots->erased = 0;
    memcpy(slots->sha256, sha256, 32);
    int status = erase_to(slots, IOMT_RECORD_HEADER); /* the old header goes first */
    slots->staging = status == IOMT_SLOTS_OK;
    return status;
}

int iomt_slots_write(iomt_slots *slots, uint32_t offset, const uint8_t *data, uint32_t len, uint32_t *next) {
    if (!slots->staging) return IOMT_SLOTS_NOT_STAGING;
    if (offset > slots->written) return IOMT_SLOTS_BAD_OFFSET;
    if (offset + len > slots->size) return IOMT_SLOTS_TOO_LARGE;
    if (offset + len > slots->written) { /* a repeated chunk only adds what is new */
        uint32_t skip = slots->written - offset, count = len - skip;
        uint32_t at = IOMT_RECORD_HEADER + slots->written;
        if (erase_to(slots, at + count) != IOMT_SLOTS_OK ||
            iomt_hal_flash_write(slot_offset(slots, idle_slot(slots)) + at, data + skip, count) != 0) {
            return IOMT_SLOTS_FLASH;
        }
        slots->written += count;
    }
    *next = slots->written;
    return IOMT_SLOTS_OK;
}

int iomt_slots_verify(iomt_slots *slots) {
    if (!slots->staging) return IOMT_SLOTS_NOT_STAGING;
    if (slots->written != slots->size) {
        slots->staging = 0;
        return IOMT_SLOTS_INCOMPLETE;
    }
    uint8_t digest[32];
    iomt_sha256(iomt_slots_staged(slots), slots->size, digest);
    if (memcmp(digest, slots->sha256, 32) != 0) {
        slots->staging = 0;
        return IOMT_SLOTS_HASH;
    }
    return IOMT_SLOTS_OK;
}

const uint8_t *iomt_slots_staged(const iomt_slots *slots) {
    return slot_bytes(slots, idle_slot(slots)) + IOMT_RECORD_HEADER;
}

int iomt_slots_commit(iomt_slots *slots) {
    if (!slots->staging) return IOMT_SLOTS_NOT_STAGING;
    int target = idle_slot(slots);
    uint32_t seq = slots->current < 0 ? 1 : slots->seq + 1;
    uint8_t header[COMMIT_OFFSET];
    memset(header, 0xFF, sizeof(header));
    iomt_put_u32(header, IOMT_RECORD_MAGIC);
    iomt_put_u32(header + 4, slots->kind);
    iomt_put_u32(header + 8, seq);
    iomt_put_u32(header + 12, slots->size);
    memcpy(header + 16, slots->sha256, 32);
    iomt_put_u16(header + CRC_OFFSET, iomt_crc16(header, CRC_OFFSET));
    uint8_t commit[4];
    iomt_put_u32(commit, IOMT_RECORD_COMMITTED);
    slots->staging = 0;
    /* the commit word is programmed last: until it is, the record does not exist */
    if (iomt_hal_flash_write(slot_offset(slots, target), header, sizeof(header)) != 0 ||
        iomt_hal_flash_write(slot_offset(slots, target) + COMMIT_OFFSET, commit, 4) != 0) {
        return IOMT_SLOTS_FLASH;
    }
    slots->current = target;
    slots->seq = seq;
    return IOMT_SLOTS_OK;
}

void iomt_slots_abort(iomt_slots *slots) { slots->staging = 0; }
