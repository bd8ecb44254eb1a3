/* The float classifier head after the int8 backbone: Dense + ReLU, then Dense + softmax.
 * A head is kept as the HEAD_SET payload it arrived in (version u32, count u8, per tensor
 * ndim u8, dims u16 x ndim, float32 LE data), so HEAD_GET can send it back unchanged. */
#ifndef IOMT_HEAD_H
#define IOMT_HEAD_H

#include <stdint.h>

#define IOMT_HEAD_MAX_HIDDEN 512
#define IOMT_HEAD_MAX_CLASSES 64

typedef struct {
    uint32_t version;
    uint16_t inputs, hidden, classes;
    /* float32 little-endian arrays inside the payload (no alignment assumed) */
    const uint8_t *kernel_0, *bias_0, *kernel_1, *bias_1; /* (inputs, hidden) (hidden) (hidden, classes) (classes) */
} iomt_head;

typedef enum { IOMT_HEAD_OK = 0, IOMT_HEAD_BAD_PAYLOAD = -1, IOMT_HEAD_BAD_SHAPE = -2 } iomt_head_status;

/* Point `head` at the tensors of a HEAD_SET payload after checking its layout and shapes. */
int iomt_head_parse(const uint8_t *payload, uint32_t len, iomt_head *head);
/* scores[classes] = softmax(relu(embedding @ kernel_0 + bias_0) @ kernel_1 + bias_1). */
void iomt_head_apply(const iomt_head *head, const float *embedding, float *scores);

#endif
