/* Two-slot records in the flash partition: an image is written into the idle slot and becomes
 * current only when its header, written last, is complete. A power cut at any point leaves the
 * previous record intact, so the device always boots with the last committed one. */
#ifndef IOMT_SLOTS_H
#define IOMT_SLOTS_H

#include <stdint.h>

#define IOMT_RECORD_HEADER 64u /* header bytes before the data in a slot */
#define IOMT_RECORD_MAGIC 0x524d4f49u  /* "IOMR" */
#define IOMT_RECORD_COMMITTED 0x600dc0deu

typedef struct {
    uint32_t base;      /* offset of slot 0 in the partition */
    uint32_t slot_size; /* bytes per slot, header included, a whole number of pages */
    uint32_t kind;      /* what the record holds (model, head) */
    int current;        /* slot of the committed record, -1 when none */
    uint32_t seq;       /* its sequence number */
    /* staging in the idle slot */
    int staging;        /* 1 while an upload is open */
    uint32_t size, written, erased;
    uint8_t sha256[32];
} iomt_slots;

typedef enum {
    IOMT_SLOTS_OK = 0,
    IOMT_SLOTS_TOO_LARGE = -1,
    IOMT_SLOTS_NOT_STAGING = -2,
    IOMT_SLOTS_BAD_OFFSET = -3,
    IOMT_SLOTS_INCOMPLETE = -4,
    IOMT_SLOTS_HASH = -5,
    IOMT_SLOTS_FLASH = -6,
} iomt_slots_status;

void iomt_slots_init(iomt_slots *slots, uint32_t base, uint32_t slot_size, uint32_t kind);
uint32_t iomt_slots_capacity(const iomt_slots *slots);
/* Pick the newest slot whose header is complete and whose data hashes to it. `skip` excludes
 * one slot (-1: none), used to fall back when the newest cannot be used. */
void iomt_slots_mount(iomt_slots *slots, int skip);
/* The committed record's data and size (NULL when none), and its SHA-256. */
const uint8_t *iomt_slots_data(const iomt_slots *slots, uint32_t *size);
const uint8_t *iomt_slots_sha256(const iomt_slots *slots);

int iomt_slots_begin(iomt_slots *slots, uint32_t size, const uint8_t sha256[32]);
/* Write data at `offset` (at most `written`); sets *next to the next offset wanted. */
int iomt_slots_write(iomt_slots *slots, uint32_t offset, const uint8_t *data, uint32_t len, uint32_t *next);
/* Check size and hash of the staged data; on success the caller may inspect it with
 * iomt_slots_staged() before iomt_slots_commit() makes it current. */
int iomt_slots_verify(iomt_slots *slots);
const uint8_t *iomt_slots_staged(const iomt_slots *slots);
int iomt_slots_commit(iomt_slots *slots);
void iomt_slots_abort(iomt_slots *slots);

#endif
