/* A stand-in for the generated backbone runner, for firmware tests that need no TensorFlow:
 * an image "IOMTFIX1" | time u16 | channels u16 | embedding u16 | shift u8 | weights int8
 * [channels][embedding] | any padding (as a .tflite carries metadata) gives
 * embedding[e] = clamp((sum_t sum_c x[t][c] * w[c][e]) >> shift).
 * Its scales are fixed (input 0.1, output 0.05, zero points 0). */
#include <string.h>

#include "iomt_backbone.h"

#define HEADER 15u

static struct {
    const uint8_t *weights;
    uint16_t time, channels, embedding;
    uint8_t shift;
} plan;

int iomt_backbone_bind(const uint8_t *tflite, uint32_t len, iomt_backbone_info *info) {
    if (len < HEADER || memcmp(tflite, "IOMTFIX1", 8) != 0) return -1;
    plan.time = (uint16_t)(tflite[8] | tflite[9] << 8);
    plan.channels = (uint16_t)(tflite[10] | tflite[11] << 8);
    plan.embedding = (uint16_t)(tflite[12] | tflite[13] << 8);
    plan.shift = tflite[14];
    if (len < HEADER + (uint32_t)plan.channels * plan.embedding) return -2;
    plan.weights = tflite + HEADER;
    info->input_len = (uint32_t)plan.time * plan.channels;
    info->time = plan.time;
    info->channels = plan.channels;
    info->embedding_len = plan.embedding;
    info->input_scale = 0.1f;
    info->input_zero_point = 0;
    info->output_scale = 0.05f;
    info->output_zero_point = 0;
    info->arena_bytes = 0;
    return 0;
}

int iomt_backbone_invoke(const int8_t *input, int8_t *embedding) {
    for (uint16_t e = 0; e < plan.embedding; e++) {
        int32_t total = 0;
        for (uint16_t t = 0; t < plan.time; t++) {
            for (uint16_t c = 0; c < plan.channels; c++) {
                total += input[t * plan.channels + c] * (int8_t)plan.weights[c * plan.embedding + e];
            }
        }
        total >>= plan.shift;
        embedding[e] = (int8_t)(total < -128 ? -128 : total > 127 ? 127 : total);
    }
    return 0;
}
