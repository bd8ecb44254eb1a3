#include "cmsdk_uart.h"

#define REG(base, offset) (*(volatile uint32_t *)((base) + (offset)))
#define DATA 0x00u
#define STATE 0x04u
#define CTRL 0x08u
#define INTSTATUS 0x0Cu /* write 1 to clear */
#define BAUDDIV 0x10u

#define STATE_TX_FULL 0x1u
#define STATE_RX_FULL 0x2u
#define CTRL_TX_EN 0x1u
#define CTRL_RX_EN 0x2u
#define CTRL_RX_INT 0x8u
#define INT_RX 0x2u

void cmsdk_uart_init(uint32_t base) {
    REG(base, BAUDDIV) = 16; /* the smallest divider the UART accepts; QEMU does not pace */
    REG(base, CTRL) = CTRL_TX_EN | CTRL_RX_EN | CTRL_RX_INT;
}

void cmsdk_uart_write(uint32_t base, const uint8_t *data, size_t len) {
    for (size_t i = 0; i < len; i++) {
        while (REG(base, STATE) & STATE_TX_FULL) {
        }
        REG(base, DATA) = data[i];
    }
    while (REG(base, STATE) & STATE_TX_FULL) {
    }
}

int cmsdk_uart_read(uint32_t base) {
    if (!(REG(base, STATE) & STATE_RX_FULL)) return -1;
    return (int)(REG(base, DATA) & 0xFFu);
}

void cmsdk_uart_clear_rx_interrupt(uint32_t base) { REG(base, INTSTATUS) = INT_RX; }
