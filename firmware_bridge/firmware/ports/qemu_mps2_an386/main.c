/* The QEMU mps2-an386 firmware: the core over the port's hardware layer. */
#include "iomt_firmware.h"

void iomt_port_init(void);
void iomt_port_idle(void);

int main(void) {
    iomt_port_init();
    iomt_firmware_boot();
    for (;;) {
        iomt_firmware_poll();
        iomt_port_idle();
    }
}
