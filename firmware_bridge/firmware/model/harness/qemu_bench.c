/* Cortex-M4 bench image of the model runner, for qemu-system-arm -M mps2-an386 -icount shift=0.
 *
 * The model is linked into flash (.incbin of IOMT_BENCH_MODEL) and bound in place, as the
 * firmware binds its flash partition. Windows come from the host file `windows.bin` (raw int8,
 * one input after another) through semihosting; for each, `outputs.bin` gets the raw int8
 * output followed by the uint32 count of CMSDK timer 0 ticks the invoke took. The timer runs at
 * the 25 MHz system clock and, under -icount shift=0, one instruction is one nanosecond, so one
 * tick is 40 instructions. Exit status 0, or 1 when bind refuses the model or a file fails.
 */
#include <stdint.h>
#include <stdio.h>

#include "iomt_backbone.h"
#include "semihosting.h"

#define STRINGIFY(x) #x
#define PATH_OF(x) STRINGIFY(x)

__asm__(".section .rodata.iomt_bench_model, \"a\"\n"
        ".balign 16\n"
        ".global iomt_bench_model\n"
        "iomt_bench_model:\n"
        ".incbin \"" PATH_OF(IOMT_BENCH_MODEL) "\"\n"
        ".global iomt_bench_model_end\n"
        "iomt_bench_model_end:\n"
        ".previous\n");
extern const uint8_t iomt_bench_model[], iomt_bench_model_end[];

#define TIMER0_CTRL (*(volatile uint32_t *)0x40000000u)
#define TIMER0_VALUE (*(volatile uint32_t *)0x40000004u)
#define TIMER0_RELOAD (*(volatile uint32_t *)0x40000008u)
#define SEMIHOST_READ_BINARY 1u
#define SEMIHOST_WRITE_BINARY 5u
#define MAX_INPUT 4096u
#define MAX_OUTPUT 1024u

/* The vector table names these; the bench needs no interrupts. */
void iomt_systick_handler(void) {}
void iomt_uart_rx_handler(void) {}

static void fail(const char *message) {
    semihost_print(message);
    semihost_exit(1);
}

/* Ticks of a loop of exactly 2 * CALIBRATION_LOOPS instructions (subs, bne), so the host
 * can check that one tick is 40 instructions. */
#define CALIBRATION_LOOPS 1000000u

static uint32_t calibration_ticks(void) {
    uint32_t count = CALIBRATION_LOOPS;
    uint32_t start = TIMER0_VALUE;
    __asm__ volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(count) : : "cc");
    return start - TIMER0_VALUE;
}

static uint32_t invoke_ticks(const int8_t *input, int8_t *output) {
    uint32_t start = TIMER0_VALUE; /* counts down */
    if (iomt_backbone_invoke(input, output) != 0) fail("iomt bench: invoke failed\n");
    return start - TIMER0_VALUE;
}

int main(void) {
    static int8_t input[MAX_INPUT], output[MAX_OUTPUT + 4];
    iomt_backbone_info info;
    uint32_t len = (uint32_t)(iomt_bench_model_end - iomt_bench_model);
    int status = iomt_backbone_bind(iomt_bench_model, len, &info);
    if (status != 0) fail("iomt bench: bind refused the model\n");
    if (info.input_len > MAX_INPUT || info.embedding_len > MAX_OUTPUT) fail("iomt bench: too big\n");
    int windows = semihost_open("windows.bin", SEMIHOST_READ_BINARY);
    int outputs = semihost_open("outputs.bin", SEMIHOST_WRITE_BINARY);
    if (windows < 0 || outputs < 0) fail("iomt bench: cannot open windows.bin / outputs.bin\n");
    TIMER0_RELOAD = 0xFFFFFFFFu;
    TIMER0_VALUE = 0xFFFFFFFFu;
    TIMER0_CTRL = 1u; /* enable, system clock, no interrupt */
    uint32_t calibration = calibration_ticks();
    while (semihost_read(windows, input, info.input_len) == 0) {
        uint32_t ticks = invoke_ticks(input, output);
        for (int byte = 0; byte < 4; ++byte) {
            output[info.embedding_len + byte] = (int8_t)(ticks >> (8 * byte));
        }
        if (semihost_write(outputs, output, info.embedding_len + 4) != 0) {
            fail("iomt bench: cannot write outputs.bin\n");
        }
    }
    char line[128];
    snprintf(line, sizeof line, "iomt bench: arena %lu B, model %lu B, calibration %lu ticks for %lu instructions\n",
             (unsigned long)info.arena_bytes, (unsigned long)len, (unsigned long)calibration,
             (unsigned long)(2u * CALIBRATION_LOOPS));
    semihost_print(line);
    return 0;
}
