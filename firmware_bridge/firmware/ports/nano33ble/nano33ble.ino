// IoMT firmware for the Arduino Nano 33 BLE Sense (nRF52840): the portable core of
// firmware_bridge/firmware/core over this board's hardware layer (src/port_hal.cpp).
// How to assemble and flash this sketch: docs/hil-rig.md, "Real board: Nano 33 BLE Sense".

#include <TensorFlowLite.h>  // puts the library's TFLite reference kernels on the include path

#include "src/iomt_firmware.h"

extern "C" void iomt_port_init(void);

void setup() {
  iomt_port_init();
  iomt_firmware_boot();
}

void loop() { iomt_firmware_poll(); }
