/* Cortex-M4 bench of the head trainer, for qemu-system-arm -M mps2-an386 -icount shift=0
 * (bench/firmware_training.py). The request comes from the host file `train.bin`; `reply.bin`
 * gets the reply (train_request.h) followed by the u32 count of CMSDK timer 0 ticks that
 * iomt_train_run took. The timer runs at the 25 MHz system clock and, under -icount shift=0,
 * one instruction is one nanosecond: one tick is 40 instructions (as model/harness/qemu_bench.c). */
#include <stdint.h>

#include "semihosting.h"
#include "train_request.h"

#define TIMER0_CTRL (*(volatile uint32_t *)0x40000000u)
#define TIMER0_VALUE (*(volatile uint32_t *)0x40000004u)
#define TIMER0_RELOAD (*(volatile uint32_t *)0x40000008u)
#define MAX_REQUEST 65536u

void iomt_systick_handler(void) {}
void iomt_uart_rx_handler(void) {}

static int reply_file = -1;

static void fail(const char *message) {
    semihost_print(message);
    semihost_exit(1);
}

static void put(const void *data, size_t len) {
    if (semihost_write(reply_file, data, (uint32_t)len) != 0) fail("train bench: cannot write reply.bin\n");
}

int main(void) {
    static uint8_t input[MAX_REQUEST];
    int request_file = semihost_open("train.bin", 1u); /* "rb" */
    reply_file = semihost_open("reply.bin", 5u);      /* "wb" */
    if (request_file < 0 || reply_file < 0) fail("train bench: cannot open train.bin / reply.bin\n");
    int len = semihost_flen(request_file);
    if (len <= 0 || (uint32_t)len > MAX_REQUEST || semihost_read(request_file, input, (uint32_t)len) != 0) {
        fail("train bench: request missing or too large\n");
    }
    iomt_train_request request;
    if (iomt_train_request_load(input, (size_t)len, &request) != 0) fail("train bench: malformed request\n");
    iomt_train_result result = {0, 0, 0.0f};
    TIMER0_RELOAD = 0xFFFFFFFFu;
    TIMER0_VALUE = 0xFFFFFFFFu;
    TIMER0_CTRL = 1u; /* enable, system clock, no interrupt */
    uint32_t start = TIMER0_VALUE; /* counts down */
    int32_t status = iomt_train_run(&request.head, &request.fit, &result);
    uint32_t ticks = start - TIMER0_VALUE;
    iomt_train_request_reply(&request, status, &result, put);
    put(&ticks, 4);
    return 0;
}
