/* Host harness of the head trainer (tests/firmware_bridge/test_head_train_c.py): the ring,
 * the trainer and the int8 codec of core/, built with the host gcc, no QEMU.
 *
 * stdin (little-endian):  epochs u16, batch_size u16, learning_rate f32, momentum f32, l2 f32,
 *   proximal_mu f32, seed u64, stochastic u8, embedding scale f32, zero_point i32,
 *   head_len u32, HEAD_SET payload [head_len], count u32, count x (label u8, int8 [inputs])
 * stdout: status i32, num_examples u32, loss f32, then per tensor: count u32, float32 delta
 *   [count], record_len u32, int8 record [record_len] (iomt_int8_codec.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iomt_bytes.h"
#include "iomt_embedding_ring.h"
#include "iomt_head.h"
#include "iomt_head_train.h"
#include "iomt_int8_codec.h"

static uint8_t input[1u << 22];

static void put(const void *data, size_t len) { fwrite(data, 1, len, stdout); }

int main(void) {
    size_t len = fread(input, 1, sizeof(input), stdin), at = 0;
    if (len < 41) return 2;
    iomt_fit_settings fit;
    fit.epochs = iomt_get_u16(input);
    fit.batch_size = iomt_get_u16(input + 2);
    fit.learning_rate = iomt_get_f32(input + 4);
    fit.momentum = iomt_get_f32(input + 8);
    fit.l2 = iomt_get_f32(input + 12);
    fit.proximal_mu = iomt_get_f32(input + 16);
    fit.seed = (uint64_t)iomt_get_u32(input + 20) | ((uint64_t)iomt_get_u32(input + 24) << 32);
    int stochastic = input[28];
    float scale = iomt_get_f32(input + 29);
    int32_t zero_point = (int32_t)iomt_get_u32(input + 33);
    uint32_t head_len = iomt_get_u32(input + 37);
    at = 41;
    iomt_head head;
    if (iomt_head_parse(input + at, head_len, &head) != IOMT_HEAD_OK) return 3;
    at += head_len;
    uint32_t count = iomt_get_u32(input + at);
    at += 4;
    if (iomt_ring_reset(head.inputs, scale, zero_point) != 0) return 4;
    for (uint32_t n = 0; n < count; n++, at += 1u + head.inputs) {
        iomt_ring_push((const int8_t *)(input + at + 1), input[at]);
    }
    iomt_train_result result = {0, 0, 0.0f};
    int32_t status = iomt_train_run(&head, &fit, &result);
    put(&status, 4);
    put(&result.num_examples, 4);
    put(&result.loss, 4);
    if (status != 0) return 0;
    iomt_rng rng;
    iomt_rng_seed(&rng, fit.seed); /* the codec's stream starts again from the seed, as on the Pi */
    static uint8_t record[IOMT_INT8_RECORD_HEADER + 8u * IOMT_TRAIN_MAX_PARAMS];
    for (uint8_t t = 0; t < 4; t++) {
        uint32_t n;
        const float *delta = iomt_train_delta(t, &n);
        put(&n, 4);
        put(delta, 4u * n);
        uint32_t bytes = iomt_int8_encode(delta, n, stochastic ? &rng : NULL, record);
        put(&bytes, 4);
        put(record, bytes);
    }
    return 0;
}
