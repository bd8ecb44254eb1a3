/* Reset and vector table of the Cortex-M4F: copy .data, clear .bss, enable the FPU, run main. */
#include <stdint.h>

#include "semihosting.h"

extern uint32_t __data_start, __data_end, __data_load, __bss_start, __bss_end, __stack_top;
extern void (*__init_array_start[])(void), (*__init_array_end[])(void);
int main(void);
void iomt_reset_handler(void);
void iomt_systick_handler(void);
void iomt_uart_rx_handler(void);

#define CPACR (*(volatile uint32_t *)0xE000ED88u)

void iomt_reset_handler(void) {
    uint32_t *src = &__data_load, *dst = &__data_start;
    while (dst < &__data_end) *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end; dst++) *dst = 0;
    CPACR |= 0xFu << 20; /* CP10 and CP11: full access to the FPU */
    __asm__ volatile("dsb\n isb");
    for (void (**init)(void) = __init_array_start; init < __init_array_end; init++) (*init)();
    main();
    semihost_exit(0);
}

static void fault_handler(void) {
    semihost_print("iomt firmware: fault (hard fault, bus, usage or memory)\n");
    semihost_exit(1);
}

static void unused_handler(void) {}

typedef void (*vector)(void);

__attribute__((section(".vectors"), used)) static const vector vectors[16 + 32] = {
    (vector)&__stack_top,
    iomt_reset_handler,
    fault_handler, /* NMI */
    fault_handler, /* HardFault */
    fault_handler, /* MemManage */
    fault_handler, /* BusFault */
    fault_handler, /* UsageFault */
    0, 0, 0, 0,
    unused_handler, /* SVCall */
    unused_handler, /* DebugMon */
    0,
    unused_handler, /* PendSV */
    iomt_systick_handler,
    iomt_uart_rx_handler, /* IRQ 0: UART0 RX */
    unused_handler,       /* IRQ 1: UART0 TX */
    iomt_uart_rx_handler, /* IRQ 2: UART1 RX */
    /* IRQ 3 to 31 */
    unused_handler, unused_handler, unused_handler, unused_handler, unused_handler, unused_handler,
    unused_handler, unused_handler, unused_handler, unused_handler, unused_handler, unused_handler,
    unused_handler, unused_handler, unused_handler, unused_handler, unused_handler, unused_handler,
    unused_handler, unused_handler, unused_handler, unused_handler, unused_handler, unused_handler,
    unused_handler, unused_handler, unused_handler, unused_handler, unused_handler,
};
