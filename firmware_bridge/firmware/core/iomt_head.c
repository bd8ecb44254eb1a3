/* Float head maths in C, the same as edge_runtime.head (Dense ReLU, Dense softmax). */
#include "iomt_head.h"

#include <math.h>
#include <stddef.h>

#include "iomt_bytes.h"

typedef struct {
    const uint8_t *data;
    uint8_t ndim;
    uint16_t dims[2];
} tensor_view;

/* Read one tensor at *offset; 0 on success. */
static int read_tensor(const uint8_t *payload, uint32_t len, uint32_t *offset, tensor_view *view) {
    if (*offset + 1 > len) return -1;
    view->ndim = payload[(*offset)++];
    if (view->ndim < 1 || view->ndim > 2 || *offset + 2u * view->ndim > len) return -1;
    uint32_t count = 1;
    for (uint8_t i = 0; i < view->ndim; i++) {
        view->dims[i] = iomt_get_u16(payload + *offset);
        count *= view->dims[i];
        *offset += 2;
    }
    if (*offset + 4u * count > len) return -1;
    view->data = payload + *offset;
    *offset += 4u * count;
    return 0;
}

static int shapes_fit(const tensor_view t[4]) {
    if (t[0].ndim != 2 || t[1].ndim != 1 || t[2].ndim != 2 || t[3].ndim != 1) return 0;
    if (t[1].dims[0] != t[0].dims[1] || t[2].dims[0] != t[0].dims[1]) return 0;
    if (t[3].dims[0] != t[2].dims[1]) return 0;
    return t[0].dims[1] <= IOMT_HEAD_MAX_HIDDEN && t[2].dims[1] <= IOMT_HEAD_MAX_CLASSES &&
           t[2].dims[1] > 0;
}

int iomt_head_parse(const uint8_t *payload, uint32_t len, iomt_head *head) {
    if (len < 5) return IOMT_HEAD_BAD_PAYLOAD;
    uint32_t offset = 5;
    tensor_view tensors[4];
    uint8_t count = payload[4];
    for (uint8_t i = 0; i < count; i++) {
        tensor_view view;
        if (read_tensor(payload, len, &offset, &view) != 0) return IOMT_HEAD_BAD_PAYLOAD;
        if (i < 4) tensors[i] = view;
    }
    if (offset != len) return IOMT_HEAD_BAD_PAYLOAD;
    if (count != 4 || !shapes_fit(tensors)) return IOMT_HEAD_BAD_SHAPE;
    head->version = iomt_get_u32(payload);
    head->inputs = tensors[0].dims[0];
    head->hidden = tensors[0].dims[1];
    head->classes = tensors[2].dims[1];
    head->kernel_0 = tensors[0].data;
    head->bias_0 = tensors[1].data;
    head->kernel_1 = tensors[2].data;
    head->bias_1 = tensors[3].data;
    return IOMT_HEAD_OK;
}

/* out[j] = bias[j] + sum_i in[i] * kernel[i][j] */
static void dense(const float *in, uint16_t inputs, const uint8_t *kernel, const uint8_t *bias,
                  uint16_t outputs, float *out) {
    for (uint16_t j = 0; j < outputs; j++) out[j] = iomt_get_f32(bias + 4u * j);
    for (uint16_t i = 0; i < inputs; i++) {
        const uint8_t *row = kernel + 4u * (uint32_t)i * outputs;
        for (uint16_t j = 0; j < outputs; j++) out[j] += in[i] * iomt_get_f32(row + 4u * j);
    }
}

void iomt_head_apply(const iomt_head *head, const float *embedding, float *scores) {
    static float hidden[IOMT_HEAD_MAX_HIDDEN];
    dense(embedding, head->inputs, head->kernel_0, head->bias_0, head->hidden, hidden);
    for (uint16_t j = 0; j < head->hidden; j++) hidden[j] = hidden[j] > 0.0f ? hidden[j] : 0.0f;
    dense(hidden, head->hidden, head->kernel_1, head->bias_1, head->classes, scores);
    float top = scores[0], total = 0.0f;
    for (uint16_t k = 1; k < head->classes; k++) top = scores[k] > top ? scores[k] : top;
    for (uint16_t k = 0; k < head->classes; k++) {
        scores[k] = expf(scores[k] - top);
        total += scores[k];
    }
    for (uint16_t k = 0; k < head->classes; k++) scores[k] /= total;
}
