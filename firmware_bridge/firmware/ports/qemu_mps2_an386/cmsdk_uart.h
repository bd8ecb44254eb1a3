/* CMSDK APB UART (mps2-an386: UART0 at 0x40004000, UART1 at 0x40005000), polled, with the RX
 * interrupt used only to wake the core from WFI. */
#ifndef IOMT_CMSDK_UART_H
#define IOMT_CMSDK_UART_H

#include <stddef.h>
#include <stdint.h>

#define CMSDK_UART0 0x40004000u
#define CMSDK_UART1 0x40005000u

void cmsdk_uart_init(uint32_t base);
void cmsdk_uart_write(uint32_t base, const uint8_t *data, size_t len);
int cmsdk_uart_read(uint32_t base); /* -1 when no byte is waiting */
void cmsdk_uart_clear_rx_interrupt(uint32_t base);

#endif
