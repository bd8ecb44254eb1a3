/* Test harness for the C SHA-256: one message per stdin line as hex ("-" for empty), its
 * digest in hex per stdout line. Build: gcc -std=c99 -I../core sha256_tool.c ../core/iomt_sha256.c */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iomt_sha256.h"

static int hex_value(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int main(void) {
    static char line[4 * 1024 * 1024];
    static uint8_t message[2 * 1024 * 1024];
    while (fgets(line, sizeof(line), stdin)) {
        size_t len = strcspn(line, "\r\n"), count = 0;
        if (!(len == 1 && line[0] == '-')) {
            for (size_t i = 0; i + 1 < len; i += 2) {
                message[count++] = (uint8_t)(hex_value(line[i]) << 4 | hex_value(line[i + 1]));
            }
        }
        uint8_t digest[32];
        iomt_sha256_t ctx; /* in odd pieces, as flash pages arrive */
        iomt_sha256_init(&ctx);
        for (size_t at = 0; at < count; at += 61) {
            iomt_sha256_update(&ctx, message + at, count - at < 61 ? count - at : 61);
        }
        iomt_sha256_final(&ctx, digest);
        for (int i = 0; i < 32; i++) printf("%02x", digest[i]);
        putchar('\n');
        fflush(stdout);
    }
    return 0;
}
