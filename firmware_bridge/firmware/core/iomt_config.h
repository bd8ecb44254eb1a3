/* What the firmware image knows about its bundle, generated at build time from the bundle's
 * manifest (firmware_bridge/firmware_build.py writes iomt_bundle_config.c). */
#ifndef IOMT_CONFIG_H
#define IOMT_CONFIG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint16_t channels;    /* sensor channels the model reads */
    uint16_t num_labels;  /* labels of the task (a button cycles through them) */
    float sample_rate_hz; /* sensor sample rate the model was trained at */
    const float *mean;    /* per-channel normalisation of float windows: (x - mean) / std */
    const float *std;
} iomt_bundle_config;

extern const iomt_bundle_config iomt_bundle;

#ifdef __cplusplus
}
#endif

#define IOMT_FIRMWARE_VERSION "iomt-fw-1.1"

#endif
