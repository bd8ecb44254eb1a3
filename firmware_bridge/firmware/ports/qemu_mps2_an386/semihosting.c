#include "semihosting.h"

#include <string.h>

enum {
    SYS_OPEN = 0x01, SYS_WRITE0 = 0x04, SYS_WRITE = 0x05, SYS_READ = 0x06, SYS_SEEK = 0x0A,
    SYS_FLEN = 0x0C, SYS_GET_CMDLINE = 0x15, SYS_EXIT = 0x18,
};

static int call(int operation, void *argument) {
    register int r0 __asm__("r0") = operation;
    register void *r1 __asm__("r1") = argument;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

int semihost_open(const char *path, uint32_t mode) {
    uint32_t block[3] = {(uint32_t)path, mode, (uint32_t)strlen(path)};
    return call(SYS_OPEN, block);
}

uint32_t semihost_write(int handle, const void *data, uint32_t len) {
    uint32_t block[3] = {(uint32_t)handle, (uint32_t)data, len};
    return (uint32_t)call(SYS_WRITE, block);
}

uint32_t semihost_read(int handle, void *data, uint32_t len) {
    uint32_t block[3] = {(uint32_t)handle, (uint32_t)data, len};
    return (uint32_t)call(SYS_READ, block);
}

int semihost_seek(int handle, uint32_t position) {
    uint32_t block[2] = {(uint32_t)handle, position};
    return call(SYS_SEEK, block);
}

int semihost_flen(int handle) {
    uint32_t block[1] = {(uint32_t)handle};
    return call(SYS_FLEN, block);
}

int semihost_cmdline(char *buffer, uint32_t len) {
    uint32_t block[2] = {(uint32_t)buffer, len};
    return call(SYS_GET_CMDLINE, block);
}

void semihost_print(const char *text) { call(SYS_WRITE0, (void *)text); }

void semihost_exit(int failed) {
    /* ADP_Stopped_ApplicationExit (0x20026) or ADP_Stopped_RunTimeErrorUnknown (0x20023) */
    call(SYS_EXIT, (void *)(failed ? 0x20023 : 0x20026));
    for (;;) {
    }
}
