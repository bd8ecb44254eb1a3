/* ARM semihosting calls (BKPT 0xAB): the QEMU port keeps its flash partition in a host file. */
#ifndef IOMT_SEMIHOSTING_H
#define IOMT_SEMIHOSTING_H

#include <stdint.h>

int semihost_open(const char *path, uint32_t mode); /* mode 3: "r+b"; returns handle or -1 */
/* Both return the number of bytes NOT transferred (0 on success), as the ARM spec says. */
uint32_t semihost_write(int handle, const void *data, uint32_t len);
uint32_t semihost_read(int handle, void *data, uint32_t len);
int semihost_seek(int handle, uint32_t position);
int semihost_flen(int handle);
int semihost_cmdline(char *buffer, uint32_t len);
void semihost_print(const char *text);
void semihost_exit(int failed) __attribute__((noreturn));

#endif
