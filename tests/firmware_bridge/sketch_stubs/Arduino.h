// Just enough of the Arduino API for a syntax check of iomt_firmware.ino on the host.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#define HIGH 1
#define LOW 0
#define INPUT_PULLUP 2
struct SerialStub {
  void begin(unsigned long) {}
  size_t write(const uint8_t *, size_t n) { return n; }
  int available() { return 0; }
  int read() { return -1; }
};
extern SerialStub Serial;
inline uint32_t micros() { return 0; }
inline int digitalRead(int) { return HIGH; }
inline void pinMode(int, int) {}
