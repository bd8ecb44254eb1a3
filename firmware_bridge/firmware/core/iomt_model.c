/* The running model (see iomt_model.h). Partition layout: two head slots (one HEAD_SET payload
 * each), then two model slots sharing the rest but the last IOMT_RING_SPILL_PAGES pages, which
 * are the embedding ring's spill region; each pair of slots is an iomt_slots record. */
#include "iomt_model.h"

#include <math.h>
#include <string.h>

#include "iomt_config.h"
#include "iomt_embedding_ring.h"
#include "iomt_errors.h"
#include "iomt_frame.h"
#include "iomt_hal.h"
#include "iomt_sha256.h"
#include "iomt_slots.h"

#define KIND_MODEL 1u
#define KIND_HEAD 2u

static iomt_slots model_slots, head_slots;
static iomt_backbone_info info;
static int bound;
static iomt_head head;
static int has_head;
static int8_t input[IOMT_MAX_INPUT];
static int8_t embedding_q[IOMT_MAX_EMBEDDING];
static float embedding[IOMT_MAX_EMBEDDING];
static int inferred; /* embedding_q holds the last window's embedding */

static uint32_t round_up(uint32_t value, uint32_t step) { return (value + step - 1) / step * step; }

static void layout(void) {
    uint32_t page = iomt_hal_flash_page_size();
    uint32_t head_slot = round_up(IOMT_RECORD_HEADER + IOMT_MAX_PAYLOAD, page);
    uint32_t model_base = 2 * head_slot;
    uint32_t spill = IOMT_RING_SPILL_PAGES * page;
    uint32_t size = iomt_hal_flash_size() / page * page;
    if (size < model_base + spill) spill = 0; /* a partition too small for it: no spill */
    uint32_t model_slot = size < model_base + spill ? 0 : (size - model_base - spill) / 2 / page * page;
    iomt_ring_attach_spill(size - spill, spill / page);
    iomt_slots_init(&head_slots, 0, head_slot, KIND_HEAD);
    iomt_slots_init(&model_slots, model_base, model_slot, KIND_MODEL);
}

static int bind_image(const uint8_t *image, uint32_t size) {
    inferred = 0;
    iomt_backbone_info candidate;
    bound = 0;
    if (iomt_backbone_bind(image, size, &candidate) != 0) return -1;
    if (candidate.input_len > IOMT_MAX_INPUT || candidate.embedding_len > IOMT_MAX_EMBEDDING ||
        candidate.input_len != (uint32_t)candidate.time * candidate.channels) {
        return -1;
    }
    info = candidate;
    bound = 1;
    return 0;
}

static void bind_current(void) {
    uint32_t size;
    const uint8_t *image = iomt_slots_data(&model_slots, &size);
    bound = 0;
    if (image != NULL) bind_image(image, size);
}

static void load_head(void) {
    uint32_t size;
    const uint8_t *payload = iomt_slots_data(&head_slots, &size);
    has_head = payload != NULL && iomt_head_parse(payload, size, &head) == IOMT_HEAD_OK;
}

void iomt_model_boot(void) {
    layout();
    iomt_slots_mount(&model_slots, -1);
    bind_current();
    if (!bound && model_slots.current >= 0) { /* the newest image does not bind: the older one */
        iomt_slots_mount(&model_slots, model_slots.current);
        bind_current();
    }
    iomt_slots_mount(&head_slots, -1);
    load_head();
}

const iomt_backbone_info *iomt_model_info(void) { return bound ? &info : NULL; }

void iomt_model_sha256(uint8_t digest[32]) {
    const uint8_t *sha = bound ? iomt_slots_sha256(&model_slots) : NULL;
    if (sha != NULL) {
        memcpy(digest, sha, 32);
    } else {
        memset(digest, 0, 32);
    }
}

uint32_t iomt_model_bytes(void) {
    uint32_t size = 0;
    if (bound) iomt_slots_data(&model_slots, &size);
    return size;
}

uint32_t iomt_model_flash_budget(void) { return iomt_slots_capacity(&model_slots); }

uint16_t iomt_model_classes(void) { return has_head ? head.classes : 0; }

int iomt_model_begin(uint32_t size, const uint8_t sha256[32]) {
    int status = iomt_slots_begin(&model_slots, size, sha256);
    if (status == IOMT_SLOTS_TOO_LARGE) {
        return iomt_fail(IOMT_E_TOO_LARGE, "model of %lu B exceeds flash budget %lu B",
                         (unsigned long)size, (unsigned long)iomt_model_flash_budget());
    }
    return status == IOMT_SLOTS_OK ? 0 : iomt_fail(IOMT_E_INVOKE_FAILED, "flash erase failed");
}

static int no_upload(void) {
    return iomt_fail(IOMT_E_NO_UPLOAD, "no upload in progress (send MODEL_BEGIN)");
}

int iomt_model_chunk(uint32_t offset, const uint8_t *data, uint32_t len, uint32_t *next) {
    int status = iomt_slots_write(&model_slots, offset, data, len, next);
    switch (status) {
    case IOMT_SLOTS_OK: return 0;
    case IOMT_SLOTS_NOT_STAGING: return no_upload();
    case IOMT_SLOTS_BAD_OFFSET:
        return iomt_fail(IOMT_E_BAD_OFFSET, "chunk at %lu, expected %lu", (unsigned long)offset,
                         (unsigned long)model_slots.written);
    case IOMT_SLOTS_TOO_LARGE:
        return iomt_fail(IOMT_E_TOO_LARGE, "chunk runs past the announced size");
    default: return iomt_fail(IOMT_E_INVOKE_FAILED, "flash write failed");
    }
}

int iomt_model_commit(uint32_t *size) {
    uint32_t written = model_slots.written, expected = model_slots.size;
    int status = iomt_slots_verify(&model_slots);
    if (status == IOMT_SLOTS_NOT_STAGING) return no_upload();
    if (status == IOMT_SLOTS_INCOMPLETE) {
        return iomt_fail(IOMT_E_BAD_OFFSET, "upload incomplete: %lu/%lu B", (unsigned long)written,
                         (unsigned long)expected);
    }
    if (status == IOMT_SLOTS_HASH) return iomt_fail(IOMT_E_HASH_MISMATCH, "SHA-256 mismatch; model not committed");
    if (bind_image(iomt_slots_staged(&model_slots), expected) != 0) {
        iomt_slots_abort(&model_slots);
        bind_current(); /* the old model keeps running */
        return iomt_fail(IOMT_E_INVOKE_FAILED, "model does not match this firmware's backbone plan");
    }
    if (iomt_slots_commit(&model_slots) != IOMT_SLOTS_OK) {
        bind_current();
        return iomt_fail(IOMT_E_INVOKE_FAILED, "flash write failed; model not committed");
    }
    *size = expected;
    return 0;
}

void iomt_model_abort(void) { iomt_slots_abort(&model_slots); }

static int store_head(const uint8_t *payload, uint32_t len) {
    uint8_t digest[32];
    uint32_t next;
    iomt_sha256(payload, len, digest);
    if (iomt_slots_begin(&head_slots, len, digest) != IOMT_SLOTS_OK ||
        iomt_slots_write(&head_slots, 0, payload, len, &next) != IOMT_SLOTS_OK ||
        iomt_slots_verify(&head_slots) != IOMT_SLOTS_OK || iomt_slots_commit(&head_slots) != IOMT_SLOTS_OK) {
        iomt_slots_abort(&head_slots);
        return -1;
    }
    return 0;
}

int iomt_model_set_head(const uint8_t *payload, uint32_t len, uint32_t *version) {
    iomt_head candidate;
    int status = iomt_head_parse(payload, len, &candidate);
    if (status == IOMT_HEAD_BAD_PAYLOAD) return iomt_fail(IOMT_E_BAD_PAYLOAD, "HEAD_SET: bad tensor layout");
    if (status != IOMT_HEAD_OK) {
        return iomt_fail(IOMT_E_SHAPE_MISMATCH, "head must be kernel_0 (E, H), bias_0 (H), kernel_1 (H, K), "
                         "bias_1 (K) with H <= %d, K <= %d", IOMT_HEAD_MAX_HIDDEN, IOMT_HEAD_MAX_CLASSES);
    }
    if (bound && candidate.inputs != info.embedding_len) {
        return iomt_fail(IOMT_E_SHAPE_MISMATCH, "head takes %u inputs but the backbone gives %lu",
                         candidate.inputs, (unsigned long)info.embedding_len);
    }
    if (store_head(payload, len) != 0) return iomt_fail(IOMT_E_INVOKE_FAILED, "flash write of the head failed");
    load_head();
    *version = candidate.version;
    return 0;
}

const iomt_head *iomt_model_current_head(void) { return has_head ? &head : NULL; }

const int8_t *iomt_model_last_embedding(void) { return inferred && bound ? embedding_q : NULL; }

const uint8_t *iomt_model_head(uint32_t *len) {
    if (!has_head) {
        *len = 0;
        return NULL;
    }
    return iomt_slots_data(&head_slots, len);
}

/* Normalise with the bundle's mean/std, quantise with the input scale and zero point
 * (round half to even, as numpy does). */
static int quantise_window(const uint8_t *data) {
    if (info.channels != iomt_bundle.channels) {
        return iomt_fail(IOMT_E_SHAPE_MISMATCH, "firmware normalises %u channels, model takes %u",
                         iomt_bundle.channels, info.channels);
    }
    for (uint32_t i = 0; i < info.input_len; i++) {
        uint32_t c = i % info.channels;
        float std = iomt_bundle.std[c] == 0.0f ? 1.0f : iomt_bundle.std[c];
        float value;
        memcpy(&value, data + 4 * i, 4);
        float q = rintf(((value - iomt_bundle.mean[c]) / std) / info.input_scale) + (float)info.input_zero_point;
        input[i] = (int8_t)(q < -128.0f ? -128 : q > 127.0f ? 127 : (int)q);
    }
    return 0;
}

static int prepare_window(uint8_t dtype, uint16_t time, uint16_t channels, const uint8_t *data) {
    if (time != info.time || channels != info.channels) {
        return iomt_fail(IOMT_E_SHAPE_MISMATCH, "window (%u, %u) but the model takes (%u, %u)", time,
                         channels, info.time, info.channels);
    }
    if (dtype == 0) {
        memcpy(input, data, info.input_len);
        return 0;
    }
    if (dtype == 2) return quantise_window(data);
    return iomt_fail(IOMT_E_SHAPE_MISMATCH, "window of dtype %u but the model takes int8 (0) or float32 (2)", dtype);
}

int iomt_model_infer(uint8_t dtype, uint16_t time, uint16_t channels, const uint8_t *data,
                     iomt_infer_result *result) {
    if (!bound) return iomt_fail(IOMT_E_NO_MODEL, "no model committed");
    if (!has_head) return iomt_fail(IOMT_E_NO_MODEL, "no head set (send HEAD_SET)");
    if (head.inputs != info.embedding_len) {
        return iomt_fail(IOMT_E_SHAPE_MISMATCH, "head takes %u inputs but the backbone gives %lu",
                         head.inputs, (unsigned long)info.embedding_len);
    }
    int status = prepare_window(dtype, time, channels, data);
    if (status != 0) return status;
    uint64_t started = iomt_hal_micros();
    inferred = 0;
    int invoked = iomt_backbone_invoke(input, embedding_q);
    if (invoked != 0) return iomt_fail(IOMT_E_INVOKE_FAILED, "backbone invoke failed (%d)", invoked);
    inferred = 1;
    for (uint32_t i = 0; i < info.embedding_len; i++) {
        embedding[i] = info.output_scale * (float)(embedding_q[i] - info.output_zero_point);
    }
    iomt_head_apply(&head, embedding, result->scores);
    result->latency_us = (uint32_t)(iomt_hal_micros() - started);
    result->classes = head.classes;
    result->predicted_class = 0;
    for (uint16_t k = 1; k < head.classes; k++) {
        if (result->scores[k] > result->scores[result->predicted_class]) result->predicted_class = k;
    }
    return 0;
}
