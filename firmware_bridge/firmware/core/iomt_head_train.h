/* The head trains on the device: the announced global head (a HEAD_SET payload) fine-tuned on
 * the embedding ring with the round's fit settings, exactly as edge_runtime.fine_tune does it
 * in numpy (float32 here, float64 there):
 *
 *   per batch   loss = mean_i CE(softmax(relu(x_i K0 + b0) K1 + b1), y_i)
 *                      + l2 * (|K0|^2 + |K1|^2) + mu / 2 * |w - w_global|^2
 *   SGD         v = momentum * v - lr * g;  w += v        (w -= lr * g when momentum is 0)
 *   batches     the ring (oldest first) shuffled every epoch by iomt_rng from `seed`
 *
 * then delta = w - w_global per tensor. Weights, velocity and gradients share one static
 * pool of 3 x IOMT_TRAIN_MAX_PARAMS floats; after training the weights' part holds the delta. */
#ifndef IOMT_HEAD_TRAIN_H
#define IOMT_HEAD_TRAIN_H

#include <stdint.h>

#include "iomt_head.h"
#include "iomt_rng.h"

#define IOMT_TRAIN_MAX_PARAMS 6144u /* head parameters the pool holds (72 KiB of floats) */
#define IOMT_TRAIN_MAX_INPUTS 256u

typedef struct {
    uint16_t epochs;
    uint16_t batch_size;
    float learning_rate;
    float momentum;
    float l2;
    float proximal_mu;
    uint64_t seed;
} iomt_fit_settings;

typedef struct {
    uint32_t num_examples;
    uint32_t params;
    float loss; /* mean batch loss of the last epoch (0 when no epoch ran) */
} iomt_train_result;

typedef enum {
    IOMT_TRAIN_OK = 0,
    IOMT_TRAIN_NO_DATA = -1,    /* the ring is empty */
    IOMT_TRAIN_SHAPE = -2,      /* ring width or a label does not fit the head */
    IOMT_TRAIN_TOO_LARGE = -3,  /* more parameters than the pool holds */
    IOMT_TRAIN_SETTINGS = -4,   /* batch_size 0 or learning rate <= 0 */
} iomt_train_status;

int iomt_train_run(const iomt_head *global, const iomt_fit_settings *fit, iomt_train_result *result);
/* Delta of tensor 0..3 (kernel_0, bias_0, kernel_1, bias_1) of the last run, NULL before one. */
const float *iomt_train_delta(uint8_t tensor, uint32_t *count);
/* Scratch of at least 4 x params bytes that is free after a run (the velocity's floats). */
uint8_t *iomt_train_scratch(uint32_t *bytes);
/* Bytes of the pool, the per-example buffers and the shuffle order (for INFO and the bench). */
uint32_t iomt_train_static_bytes(void);

#endif
