/* The hardware layer of the QEMU mps2-an386 port (docs/hil-rig.md, "QEMU rig"):
 *   host link   UART0, the serial protocol;
 *   sensors     UART1, fed by the host: 'S' + channels x float32 LE is a sample, 'L' + u16 LE
 *               a button press (the label of the activity from now on);
 *   flash       the model partition lives in the FLASH region (memory-mapped, as on the
 *               nRF52840) and is written through to a host file with semihosting, so killing
 *               QEMU leaves the file as a power cut would leave the flash; programming can
 *               only clear bits, as on NOR flash;
 *   timer       SysTick at the 25 MHz system clock, one interrupt per 10 ms. */
#include <stdint.h>
#include <string.h>

#include "cmsdk_uart.h"
#include "iomt_config.h"
#include "iomt_hal.h"
#include "semihosting.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define SCB_AIRCR (*(volatile uint32_t *)0xE000ED0Cu)
#define NVIC_ISER0 (*(volatile uint32_t *)0xE000E100u)
#define CLOCK_HZ 25000000u
#define TICK_CYCLES (CLOCK_HZ / 100u)
#define PAGE_SIZE 4096u

extern uint8_t __iomt_partition_start[], __iomt_partition_end[];
static volatile uint32_t ticks;
static int flash_file = -1;

/* --- timer --------------------------------------------------------------------------- */

void iomt_systick_handler(void) { ticks++; }

void iomt_uart_rx_handler(void) {
    cmsdk_uart_clear_rx_interrupt(CMSDK_UART0);
    cmsdk_uart_clear_rx_interrupt(CMSDK_UART1);
}

uint64_t iomt_hal_micros(void) {
    __asm__ volatile("cpsid i");
    uint32_t count = ticks, value = SYST_CVR;
    if ((SCB_ICSR & (1u << 26)) && value > TICK_CYCLES / 2) count++; /* wrapped, not yet counted */
    __asm__ volatile("cpsie i");
    uint64_t cycles = (uint64_t)count * TICK_CYCLES + (TICK_CYCLES - 1u - value);
    return cycles / (CLOCK_HZ / 1000000u);
}

/* --- host link ----------------------------------------------------------------------- */

void iomt_hal_uart_write(const uint8_t *data, size_t len) { cmsdk_uart_write(CMSDK_UART0, data, len); }

int iomt_hal_uart_read(void) { return cmsdk_uart_read(CMSDK_UART0); }

const char *iomt_hal_board_name(void) { return "qemu-mps2-an386"; }

/* --- flash ----------------------------------------------------------------------------- */

const uint8_t *iomt_hal_flash_base(void) { return __iomt_partition_start; }

uint32_t iomt_hal_flash_size(void) { return (uint32_t)(__iomt_partition_end - __iomt_partition_start); }

uint32_t iomt_hal_flash_page_size(void) { return PAGE_SIZE; }

static int write_through(uint32_t offset, uint32_t len) {
    if (semihost_seek(flash_file, offset) != 0) return -1;
    return semihost_write(flash_file, __iomt_partition_start + offset, len) == 0 ? 0 : -1;
}

int iomt_hal_flash_erase(uint32_t offset, uint32_t len) {
    if (offset % PAGE_SIZE || len % PAGE_SIZE || offset + len > iomt_hal_flash_size()) return -1;
    memset(__iomt_partition_start + offset, 0xFF, len);
    return write_through(offset, len);
}

int iomt_hal_flash_write(uint32_t offset, const uint8_t *data, uint32_t len) {
    if (offset + len > iomt_hal_flash_size()) return -1;
    for (uint32_t i = 0; i < len; i++) __iomt_partition_start[offset + i] &= data[i];
    return write_through(offset, len);
}

/* --- sensors (UART1) ----------------------------------------------------------------- */

uint16_t iomt_hal_sensor_channels(void) { return iomt_bundle.channels; }

float iomt_hal_sensor_rate_hz(void) { return iomt_bundle.sample_rate_hz; }

static uint8_t record[1 + 4 * IOMT_MAX_CHANNELS];
static uint32_t record_len;

static uint32_t record_size(uint8_t tag) {
    return tag == 'S' ? 1u + 4u * iomt_bundle.channels : tag == 'L' ? 3u : 1u;
}

static iomt_sensor_kind finish_record(iomt_sensor_event *event) {
    record_len = 0;
    if (record[0] == 'L') {
        event->label = (uint16_t)(record[1] | (record[2] << 8));
        return event->kind = IOMT_SENSOR_BUTTON;
    }
    if (record[0] != 'S') return IOMT_SENSOR_NONE; /* unknown byte: skipped */
    for (uint16_t c = 0; c < iomt_bundle.channels; c++) memcpy(&event->values[c], record + 1 + 4 * c, 4);
    return event->kind = IOMT_SENSOR_SAMPLE;
}

iomt_sensor_kind iomt_hal_sensor_poll(iomt_sensor_event *event) {
    int byte;
    while ((byte = cmsdk_uart_read(CMSDK_UART1)) >= 0) {
        record[record_len++] = (uint8_t)byte;
        if (record_len == record_size(record[0])) {
            iomt_sensor_kind kind = finish_record(event);
            if (kind != IOMT_SENSOR_NONE) return kind;
        }
    }
    return IOMT_SENSOR_NONE;
}

/* --- board ----------------------------------------------------------------------------- */

void iomt_hal_reboot(void) {
    SCB_AIRCR = 0x05FA0004u; /* SYSRESETREQ */
    for (;;) {
    }
}

static void mount_flash(void) {
    static char path[256];
    memset(path, 0, sizeof(path));
    if (semihost_cmdline(path, sizeof(path) - 1) != 0 || path[0] == 0) {
        semihost_print("iomt firmware: no flash file (semihosting arg=PATH)\n");
        semihost_exit(1);
    }
    flash_file = semihost_open(path, 3); /* "r+b": the file must exist */
    if (flash_file < 0) {
        semihost_print("iomt firmware: cannot open the flash file\n");
        semihost_exit(1);
    }
    uint32_t size = iomt_hal_flash_size();
    int length = semihost_flen(flash_file);
    uint32_t present = length < 0 ? 0 : (uint32_t)length < size ? (uint32_t)length : size;
    memset(__iomt_partition_start, 0xFF, size); /* bytes the file lacks are erased flash */
    semihost_seek(flash_file, 0);
    semihost_read(flash_file, __iomt_partition_start, present);
}

void iomt_port_init(void) {
    cmsdk_uart_init(CMSDK_UART0);
    cmsdk_uart_init(CMSDK_UART1);
    SYST_RVR = TICK_CYCLES - 1u;
    SYST_CVR = 0;
    SYST_CSR = 0x7u; /* processor clock, interrupt, enable */
    NVIC_ISER0 = (1u << 0) | (1u << 2); /* UART0 RX, UART1 RX */
    mount_flash();
}

/* Sleep until an interrupt (a received byte or the tick); one that came in between the last
 * poll and here ends WFI at once because interrupts are masked, not disabled. */
void iomt_port_idle(void) {
    __asm__ volatile("cpsid i");
    if (!(*(volatile uint32_t *)(CMSDK_UART0 + 4u) & 2u) && !(*(volatile uint32_t *)(CMSDK_UART1 + 4u) & 2u)) {
        __asm__ volatile("wfi");
    }
    __asm__ volatile("cpsie i");
}
