/* A training request and its reply as the head-trainer harnesses exchange them with the host
 * (head_train_tool.c with the host gcc, train_bench.c under QEMU).
 *
 * request (little-endian): epochs u16, batch_size u16, learning_rate f32, momentum f32, l2 f32,
 *   proximal_mu f32, seed u64, stochastic u8, embedding scale f32, zero_point i32,
 *   head_len u32, HEAD_SET payload [head_len], count u32, count x (label u8, int8 [inputs])
 * reply: status i32, num_examples u32, loss f32, then per tensor: count u32, float32 delta
 *   [count], record_len u32, int8 record [record_len] (core/iomt_int8_codec.h). */
#ifndef IOMT_TRAIN_REQUEST_H
#define IOMT_TRAIN_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "iomt_head.h"
#include "iomt_head_train.h"

typedef struct {
    iomt_head head; /* points into the request buffer */
    iomt_fit_settings fit;
    int stochastic;
} iomt_train_request;

typedef void (*iomt_put_fn)(const void *data, size_t len);

/* Parse the request and fill the ring with its embeddings; 0, or non-zero when malformed. */
int iomt_train_request_load(const uint8_t *input, size_t len, iomt_train_request *request);
/* Write the reply of a finished iomt_train_run (the int8 records encoded here). */
void iomt_train_request_reply(const iomt_train_request *request, int32_t status,
                              const iomt_train_result *result, iomt_put_fn put);

#endif
