#include "iomt_cobs.h"

size_t iomt_cobs_encode(const uint8_t *src, size_t len, uint8_t *dst) {
    size_t read = 0, write = 1, code_index = 0;
    uint8_t code = 1;
    while (read < len) {
        if (src[read] == 0) {
            dst[code_index] = code;
            code = 1;
            code_index = write++;
            read++;
            continue;
        }
        dst[write++] = src[read++];
        code++;
        if (code == 0xFF) {
            dst[code_index] = code;
            code = 1;
            if (read == len) {
                return write; /* a full block at the very end needs no final code */
            }
            code_index = write++;
        }
    }
    dst[code_index] = code;
    return write;
}

long iomt_cobs_decode(const uint8_t *src, size_t len, uint8_t *dst) {
    size_t read = 0, write = 0;
    while (read < len) {
        uint8_t code = src[read++];
        if (code == 0) {
            return -1;
        }
        for (uint8_t i = 1; i < code; i++) {
            if (read >= len || src[read] == 0) {
                return -1;
            }
            dst[write++] = src[read++];
        }
        if (code != 0xFF && read < len) {
            dst[write++] = 0;
        }
    }
    return (long)write;
}
