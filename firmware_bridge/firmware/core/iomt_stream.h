/* Sensor streaming: samples from the sensor layer go out as SENSOR_FRAMEs (float32, sensor
 * units) while a stream runs; a button press becomes a LABEL_EVENT at the next sample's time.
 * Timestamps count samples at the sensor's rate from STREAM_START, as a fixed-rate sensor
 * clocks them. */
#ifndef IOMT_STREAM_H
#define IOMT_STREAM_H

#include <stdint.h>

#define IOMT_STREAM_DEFAULT_SAMPLES 10
#define IOMT_STREAM_MAX_SAMPLES 64

void iomt_stream_start(uint16_t samples_per_frame);
void iomt_stream_stop(void);
/* Drain the sensor layer; send frames and label events while streaming. */
void iomt_stream_poll(void);
/* The label of the last button press (0 when none was ever pressed: returns -1). */
int iomt_stream_label(void);

#endif
