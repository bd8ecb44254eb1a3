/* The hardware layer a port provides: UART, model flash partition, timer, sensors, reboot.
 * Everything the core does goes through these functions; nothing else is board specific. */
#ifndef IOMT_HAL_H
#define IOMT_HAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IOMT_MAX_CHANNELS 16

/* The host link: write every byte (blocking), read one byte or -1 when none is waiting. */
void iomt_hal_uart_write(const uint8_t *data, size_t len);
int iomt_hal_uart_read(void);

/* Microseconds since power-on. */
uint64_t iomt_hal_micros(void);

/* The model partition: memory-mapped for reading; erase sets whole pages to 0xFF, write
 * programs bytes into erased flash. Both return 0, or negative when the flash refuses. */
const uint8_t *iomt_hal_flash_base(void);
uint32_t iomt_hal_flash_size(void);
uint32_t iomt_hal_flash_page_size(void);
int iomt_hal_flash_erase(uint32_t offset, uint32_t len);
int iomt_hal_flash_write(uint32_t offset, const uint8_t *data, uint32_t len);

typedef enum { IOMT_SENSOR_NONE = 0, IOMT_SENSOR_SAMPLE = 1, IOMT_SENSOR_BUTTON = 2 } iomt_sensor_kind;

typedef struct {
    iomt_sensor_kind kind;
    uint16_t label;                  /* IOMT_SENSOR_BUTTON: the label pressed */
    float values[IOMT_MAX_CHANNELS]; /* IOMT_SENSOR_SAMPLE: one sample per channel, sensor units */
} iomt_sensor_event;

/* Channels of the attached sensor (0: none) and its sample rate. */
uint16_t iomt_hal_sensor_channels(void);
float iomt_hal_sensor_rate_hz(void);
/* The next sample or button press, IOMT_SENSOR_NONE when nothing is waiting. */
iomt_sensor_kind iomt_hal_sensor_poll(iomt_sensor_event *event);

/* Board name reported in INFO. */
const char *iomt_hal_board_name(void);

/* Reboot the microcontroller (does not return). */
void iomt_hal_reboot(void);

#ifdef __cplusplus
}
#endif

#endif
