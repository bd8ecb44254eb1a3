/* iomt_backbone.h: the int8 backbone as the firmware core sees it. */
#ifndef IOMT_BACKBONE_H
#define IOMT_BACKBONE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  uint32_t input_len;        /* time * channels int8 values */
  uint16_t time, channels;
  uint32_t embedding_len;    /* int8 outputs */
  float input_scale;  int32_t input_zero_point;
  float output_scale; int32_t output_zero_point;
  uint32_t arena_bytes;
} iomt_backbone_info;
/* Check that a .tflite image (in flash) matches the generated plan and bind its weights; 0 or negative error. */
int iomt_backbone_bind(const uint8_t *tflite, uint32_t len, iomt_backbone_info *info);
/* One window: int8 input[input_len] -> int8 embedding[embedding_len]; recurrent state reset first. 0 or negative. */
int iomt_backbone_invoke(const int8_t *input, int8_t *embedding);

#ifdef __cplusplus
}
#endif

#endif
