// The hardware layer of the Nano 33 BLE Sense port (Arduino mbed core, nRF52840):
//   host link  USB CDC Serial, 921600 baud;
//   flash      the last IOMT_PARTITION_SIZE bytes of the internal flash through mbed's
//              FlashIAP (4 KB pages, 4-byte program unit), memory-mapped for reading;
//   timer      micros(), extended to 64 bits;
//   sensors    the LSM9DS1 IMU (Arduino_LSM9DS1) read at the bundle's sample rate and scaled
//              to the units of the training data (kAccelScale, kGyroScale); a push button on
//              D2 to GND: each press moves to the next of the bundle's labels and reports it.
#include <Arduino.h>
#include <Arduino_LSM9DS1.h>
#include <FlashIAP.h>
#include <string.h>

#include "iomt_config.h"
#include "iomt_hal.h"

#ifndef IOMT_PARTITION_SIZE
#define IOMT_PARTITION_SIZE (672u * 1024u)
#endif

namespace {

constexpr int kButtonPin = 2;
constexpr float kAccelScale = 1.0f;  // LSM9DS1 gives g; set to the training data's unit
constexpr float kGyroScale = 1.0f;   // LSM9DS1 gives degrees/s; likewise

mbed::FlashIAP flash;
uint32_t partition_start;
uint32_t last_micros, micros_high;
uint32_t next_sample_us;
int button_last = HIGH;
uint16_t label;

uint8_t program_word[4];

}  // namespace

extern "C" {

void iomt_hal_uart_write(const uint8_t *data, size_t len) { Serial.write(data, len); }

int iomt_hal_uart_read(void) { return Serial.available() ? Serial.read() : -1; }

uint64_t iomt_hal_micros(void) {
  uint32_t now = micros();
  if (now < last_micros) micros_high++;
  last_micros = now;
  return ((uint64_t)micros_high << 32) | now;
}

const char *iomt_hal_board_name(void) { return "nano33ble"; }

const uint8_t *iomt_hal_flash_base(void) { return (const uint8_t *)partition_start; }

uint32_t iomt_hal_flash_size(void) { return IOMT_PARTITION_SIZE; }

uint32_t iomt_hal_flash_page_size(void) { return flash.get_sector_size(partition_start); }

int iomt_hal_flash_erase(uint32_t offset, uint32_t len) {
  return flash.erase(partition_start + offset, len) == 0 ? 0 : -1;
}

// The NVMC programs whole words: bytes outside [offset, offset + len) are written as 0xFF,
// which leaves them as they are (programming only clears bits).
int iomt_hal_flash_write(uint32_t offset, const uint8_t *data, uint32_t len) {
  uint32_t address = partition_start + offset;
  while (len > 0) {
    uint32_t word = address & ~3u, skip = address - word;
    uint32_t take = 4 - skip < len ? 4 - skip : len;
    memset(program_word, 0xFF, sizeof(program_word));
    memcpy(program_word + skip, data, take);
    if (flash.program(program_word, word, 4) != 0) return -1;
    address += take;
    data += take;
    len -= take;
  }
  return 0;
}

// The IMU gives six channels (acceleration x y z, rotation x y z); a bundle reading any other
// channels has no sensor on this board (STREAM_START answers ERROR 3).
uint16_t iomt_hal_sensor_channels(void) { return iomt_bundle.channels == 6 ? 6 : 0; }

float iomt_hal_sensor_rate_hz(void) { return iomt_bundle.sample_rate_hz; }

static bool button_pressed(void) {
  int now = digitalRead(kButtonPin);
  bool pressed = button_last == HIGH && now == LOW;
  button_last = now;
  return pressed;
}

iomt_sensor_kind iomt_hal_sensor_poll(iomt_sensor_event *event) {
  if (button_pressed()) {
    label = (uint16_t)((label + 1) % (iomt_bundle.num_labels ? iomt_bundle.num_labels : 1));
    event->label = label;
    return event->kind = IOMT_SENSOR_BUTTON;
  }
  if ((int32_t)(micros() - next_sample_us) < 0 || !IMU.accelerationAvailable() ||
      !IMU.gyroscopeAvailable()) {
    return IOMT_SENSOR_NONE;
  }
  next_sample_us += (uint32_t)(1e6f / iomt_bundle.sample_rate_hz);
  float *v = event->values;
  IMU.readAcceleration(v[0], v[1], v[2]);
  IMU.readGyroscope(v[3], v[4], v[5]);
  for (int c = 0; c < 3; c++) v[c] *= kAccelScale;
  for (int c = 3; c < 6; c++) v[c] *= kGyroScale;
  return event->kind = IOMT_SENSOR_SAMPLE;
}

void iomt_hal_reboot(void) {
  Serial.flush();
  NVIC_SystemReset();
}

void iomt_port_init(void) {
  Serial.begin(921600);
  pinMode(kButtonPin, INPUT_PULLUP);
  IMU.begin();
  flash.init();
  partition_start = flash.get_flash_start() + flash.get_flash_size() - IOMT_PARTITION_SIZE;
  next_sample_us = micros();
}

}  // extern "C"
