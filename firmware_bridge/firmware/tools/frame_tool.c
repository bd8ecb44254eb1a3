/* Test harness for the C framing: reads commands on stdin, one per line, answers on stdout.
 *
 *   E <type> <seq> <payload hex or ->   ->  <encoded frame hex, delimiter included>
 *   D <wire bytes hex>                  ->  <frames> [<type>:<seq>:<payload hex or ->]... | \
 *                                           <cobs> <length> <crc> <version> <oversize>
 *
 * `D` feeds the bytes one by one to a fresh streaming decoder (as the firmware's UART ISR
 * would). Build: gcc -O2 -I../framing frame_tool.c ../framing/iomt_*.c -o frame_tool
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iomt_frame.h"

#define LINE_MAX_BYTES (4 * IOMT_MAX_ENCODED + 64)

static char line[LINE_MAX_BYTES];
static uint8_t bytes[IOMT_MAX_ENCODED * 2];
static uint8_t encoded[IOMT_MAX_ENCODED + 1];
static iomt_decoder_t decoder;

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static long parse_hex(const char *text, uint8_t *out, size_t capacity) {
    size_t count = 0;
    if (strcmp(text, "-") == 0) return 0;
    while (text[0] && text[1]) {
        int high = hex_value(text[0]), low = hex_value(text[1]);
        if (high < 0 || low < 0 || count >= capacity) return -1;
        out[count++] = (uint8_t)(high << 4 | low);
        text += 2;
    }
    return (long)count;
}

static void print_hex(const uint8_t *data, size_t len) {
    if (len == 0) {
        putchar('-');
        return;
    }
    for (size_t i = 0; i < len; i++) printf("%02x", data[i]);
}

static void do_encode(char *args) {
    unsigned type, seq;
    char payload_hex[LINE_MAX_BYTES];
    if (sscanf(args, "%u %u %s", &type, &seq, payload_hex) != 3) {
        puts("ERR usage");
        return;
    }
    long length = parse_hex(payload_hex, bytes, IOMT_MAX_PAYLOAD);
    size_t written = length < 0 ? 0
        : iomt_frame_encode((uint8_t)type, (uint8_t)seq, bytes, (uint16_t)length, encoded,
                            sizeof(encoded));
    if (written == 0) {
        puts("ERR encode");
        return;
    }
    print_hex(encoded, written);
    putchar('\n');
}

static void do_decode(char *args) {
    long length = parse_hex(args, bytes, sizeof(bytes));
    if (length < 0) {
        puts("ERR hex");
        return;
    }
    iomt_decoder_init(&decoder);
    iomt_frame_t frames[64];
    uint8_t payloads[4][IOMT_MAX_PAYLOAD];
    int count = 0;
    for (long i = 0; i < length; i++) {
        iomt_frame_t frame;
        if (iomt_decoder_feed(&decoder, bytes[i], &frame) && count < 64) {
            if (count < 4) {
                memcpy(payloads[count], frame.payload, frame.length);
                frame.payload = payloads[count];
            }
            frames[count++] = frame;
        }
    }
    printf("%d", count);
    for (int i = 0; i < count && i < 4; i++) {
        printf(" %u:%u:", frames[i].type, frames[i].seq);
        print_hex(frames[i].payload, frames[i].length);
    }
    printf(" | %u %u %u %u %u\n", decoder.errors[IOMT_ERR_COBS], decoder.errors[IOMT_ERR_LENGTH],
           decoder.errors[IOMT_ERR_CRC], decoder.errors[IOMT_ERR_VERSION],
           decoder.errors[IOMT_ERR_OVERSIZE]);
}

int main(void) {
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        if (line[0] == 'E' && line[1] == ' ') {
            do_encode(line + 2);
        } else if (line[0] == 'D' && line[1] == ' ') {
            do_decode(line + 2);
        } else if (line[0]) {
            puts("ERR command");
        }
        fflush(stdout);
    }
    return 0;
}
