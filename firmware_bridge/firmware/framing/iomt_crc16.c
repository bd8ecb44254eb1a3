#include "iomt_crc16.h"

uint16_t iomt_crc16_update(uint16_t crc, const uint8_t *data, size_t len) {
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)data[i] << 8;
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

uint16_t iomt_crc16(const uint8_t *data, size_t len) {
    return iomt_crc16_update(0xFFFF, data, len);
}
