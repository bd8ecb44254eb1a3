/* The flash HAL of the trainer harnesses (head_train_tool.c, train_bench.c): a RAM array that
 * behaves as NOR flash, so the ring's spill runs as on a board. Erase sets whole pages to 0xFF;
 * a write into bytes that are not erased is refused, which holds the spill to its append-only,
 * erase-before-reuse discipline. */
#include <string.h>

#include "iomt_embedding_ring.h"
#include "iomt_hal.h"

#ifndef IOMT_TOOL_FLASH_BYTES
#define IOMT_TOOL_FLASH_BYTES (IOMT_RING_SPILL_PAGES * 4096u) /* the spill region alone */
#endif
#define PAGE 4096u

static uint8_t flash[IOMT_TOOL_FLASH_BYTES];

const uint8_t *iomt_hal_flash_base(void) { return flash; }
uint32_t iomt_hal_flash_size(void) { return IOMT_TOOL_FLASH_BYTES; }
uint32_t iomt_hal_flash_page_size(void) { return PAGE; }

int iomt_hal_flash_erase(uint32_t offset, uint32_t len) {
    if (offset % PAGE || len % PAGE || offset > IOMT_TOOL_FLASH_BYTES || len > IOMT_TOOL_FLASH_BYTES - offset) return -1;
    memset(flash + offset, 0xFF, len);
    return 0;
}

int iomt_hal_flash_write(uint32_t offset, const uint8_t *data, uint32_t len) {
    if (offset > IOMT_TOOL_FLASH_BYTES || len > IOMT_TOOL_FLASH_BYTES - offset) return -1;
    for (uint32_t i = 0; i < len; i++) {
        if (flash[offset + i] != 0xFF) return -1;
    }
    memcpy(flash + offset, data, len);
    return 0;
}
