#include "train_request.h"

#include "iomt_bytes.h"
#include "iomt_embedding_ring.h"
#include "iomt_hal.h"
#include "iomt_int8_codec.h"

#define FIXED_BYTES 41u

int iomt_train_request_load(const uint8_t *input, size_t len, iomt_train_request *request) {
    if (len < FIXED_BYTES) return 2;
    iomt_fit_settings *fit = &request->fit;
    fit->epochs = iomt_get_u16(input);
    fit->batch_size = iomt_get_u16(input + 2);
    fit->learning_rate = iomt_get_f32(input + 4);
    fit->momentum = iomt_get_f32(input + 8);
    fit->l2 = iomt_get_f32(input + 12);
    fit->proximal_mu = iomt_get_f32(input + 16);
    fit->seed = (uint64_t)iomt_get_u32(input + 20) | ((uint64_t)iomt_get_u32(input + 24) << 32);
    request->stochastic = input[28];
    float scale = iomt_get_f32(input + 29);
    int32_t zero_point = (int32_t)iomt_get_u32(input + 33);
    uint32_t head_len = iomt_get_u32(input + 37);
    size_t at = FIXED_BYTES;
    if (at + head_len + 4 > len || iomt_head_parse(input + at, head_len, &request->head) != IOMT_HEAD_OK) return 3;
    at += head_len;
    uint32_t count = iomt_get_u32(input + at), width = request->head.inputs;
    at += 4;
    if (at + (size_t)count * (1u + width) != len) return 3;
    iomt_ring_attach_spill(0, iomt_hal_flash_size() / iomt_hal_flash_page_size()); /* the whole flash */
    if (iomt_ring_reset((uint16_t)width, scale, zero_point) != 0) return 4;
    for (uint32_t n = 0; n < count; n++, at += 1u + width) {
        if (iomt_ring_push((const int8_t *)(input + at + 1), input[at]) != 0) return 4;
    }
    return 0;
}

void iomt_train_request_reply(const iomt_train_request *request, int32_t status,
                              const iomt_train_result *result, iomt_put_fn put) {
    put(&status, 4);
    put(&result->num_examples, 4);
    put(&result->loss, 4);
    if (status != 0) return;
    iomt_rng rng;
    iomt_rng_seed(&rng, request->fit.seed); /* the codec's stream starts again from the seed, as on the Pi */
    static uint8_t record[IOMT_INT8_RECORD_HEADER + 8u * IOMT_TRAIN_MAX_PARAMS];
    for (uint8_t t = 0; t < 4; t++) {
        uint32_t n;
        const float *delta = iomt_train_delta(t, &n);
        put(&n, 4);
        put(delta, 4u * n);
        uint32_t bytes = iomt_int8_encode(delta, n, request->stochastic ? &rng : NULL, record);
        put(&bytes, 4);
        put(record, bytes);
    }
}
