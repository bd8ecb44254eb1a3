/* The firmware core: a port calls iomt_firmware_boot() once and iomt_firmware_poll() forever. */
#ifndef IOMT_FIRMWARE_H
#define IOMT_FIRMWARE_H

#ifdef __cplusplus
extern "C" {
#endif

void iomt_firmware_boot(void);
void iomt_firmware_poll(void);

#ifdef __cplusplus
}
#endif

#endif
