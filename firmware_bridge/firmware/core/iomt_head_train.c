#include "iomt_head_train.h"

#include <math.h>
#include <string.h>

#include "iomt_bytes.h"
#include "iomt_embedding_ring.h"

static float pool[3u * IOMT_TRAIN_MAX_PARAMS]; /* weights | velocity | gradients */
static uint16_t order[IOMT_RING_MAX_TOTAL];
static float x[IOMT_TRAIN_MAX_INPUTS];
static float z0[IOMT_HEAD_MAX_HIDDEN], hidden[IOMT_HEAD_MAX_HIDDEN], d_hidden[IOMT_HEAD_MAX_HIDDEN];
static float probs[IOMT_HEAD_MAX_CLASSES];

typedef struct {
    uint32_t offset[5]; /* start of each tensor in a parameter vector; offset[4] = params */
    uint16_t inputs, hidden, classes;
} layout_t;

static layout_t shape;
static int trained;

static void plan(const iomt_head *head) {
    shape.inputs = head->inputs;
    shape.hidden = head->hidden;
    shape.classes = head->classes;
    shape.offset[0] = 0;
    shape.offset[1] = (uint32_t)head->inputs * head->hidden;
    shape.offset[2] = shape.offset[1] + head->hidden;
    shape.offset[3] = shape.offset[2] + (uint32_t)head->hidden * head->classes;
    shape.offset[4] = shape.offset[3] + head->classes;
}

/* The global head's value of parameter i (flash bytes, unaligned little-endian floats). */
static const uint8_t *tensor_bytes(const iomt_head *head, int t) {
    const uint8_t *tensors[4] = {head->kernel_0, head->bias_0, head->kernel_1, head->bias_1};
    return tensors[t];
}

static void load_global(const iomt_head *head, float *w) {
    for (int t = 0; t < 4; t++) {
        const uint8_t *src = tensor_bytes(head, t);
        for (uint32_t i = shape.offset[t]; i < shape.offset[t + 1]; i++) w[i] = iomt_get_f32(src + 4u * (i - shape.offset[t]));
    }
}

/* Forward one example; adds its gradient (scaled by 1/batch) to g; returns its CE loss. */
static float accumulate(const float *w, float *g, uint8_t label, float inv_batch) {
    const float *k0 = w, *b0 = w + shape.offset[1], *k1 = w + shape.offset[2], *b1 = w + shape.offset[3];
    uint16_t E = shape.inputs, H = shape.hidden, K = shape.classes;
    for (uint16_t j = 0; j < H; j++) z0[j] = b0[j];
    for (uint16_t i = 0; i < E; i++) {
        const float *row = k0 + (uint32_t)i * H;
        for (uint16_t j = 0; j < H; j++) z0[j] += x[i] * row[j];
    }
    for (uint16_t j = 0; j < H; j++) hidden[j] = z0[j] > 0.0f ? z0[j] : 0.0f;
    for (uint16_t k = 0; k < K; k++) probs[k] = b1[k];
    for (uint16_t j = 0; j < H; j++) {
        const float *row = k1 + (uint32_t)j * K;
        for (uint16_t k = 0; k < K; k++) probs[k] += hidden[j] * row[k];
    }
    float top = probs[0], total = 0.0f;
    for (uint16_t k = 1; k < K; k++) top = probs[k] > top ? probs[k] : top;
    for (uint16_t k = 0; k < K; k++) total += (probs[k] = expf(probs[k] - top));
    for (uint16_t k = 0; k < K; k++) probs[k] /= total;
    float picked = probs[label] < 1e-12f ? 1e-12f : probs[label] > 1.0f ? 1.0f : probs[label];
    /* backward: d_logits = (p - onehot) / batch, kept in probs */
    probs[label] -= 1.0f;
    for (uint16_t k = 0; k < K; k++) probs[k] *= inv_batch;
    float *gk0 = g, *gb0 = g + shape.offset[1], *gk1 = g + shape.offset[2], *gb1 = g + shape.offset[3];
    for (uint16_t k = 0; k < K; k++) gb1[k] += probs[k];
    for (uint16_t j = 0; j < H; j++) {
        const float *row = k1 + (uint32_t)j * K;
        float *grow = gk1 + (uint32_t)j * K, back = 0.0f;
        for (uint16_t k = 0; k < K; k++) {
            grow[k] += hidden[j] * probs[k];
            back += probs[k] * row[k];
        }
        d_hidden[j] = z0[j] > 0.0f ? back : 0.0f;
        gb0[j] += d_hidden[j];
    }
    for (uint16_t i = 0; i < E; i++) {
        float *grow = gk0 + (uint32_t)i * H;
        for (uint16_t j = 0; j < H; j++) grow[j] += x[i] * d_hidden[j];
    }
    return -logf(picked);
}

/* Add the L2 (kernels) and FedProx terms to g; returns their loss. */
static float regularise(const iomt_head *global, const float *w, float *g, const iomt_fit_settings *fit) {
    float extra = 0.0f;
    if (fit->l2 != 0.0f) {
        for (int t = 0; t < 4; t += 2) {
            float sum = 0.0f;
            for (uint32_t i = shape.offset[t]; i < shape.offset[t + 1]; i++) {
                sum += w[i] * w[i];
                g[i] += 2.0f * fit->l2 * w[i];
            }
            extra += fit->l2 * sum;
        }
    }
    if (fit->proximal_mu != 0.0f) {
        for (int t = 0; t < 4; t++) {
            const uint8_t *src = tensor_bytes(global, t);
            float sum = 0.0f;
            for (uint32_t i = shape.offset[t]; i < shape.offset[t + 1]; i++) {
                float diff = w[i] - iomt_get_f32(src + 4u * (i - shape.offset[t]));
                sum += diff * diff;
                g[i] += fit->proximal_mu * diff;
            }
            extra += 0.5f * fit->proximal_mu * sum;
        }
    }
    return extra;
}

static void step(float *w, float *v, const float *g, const iomt_fit_settings *fit) {
    uint32_t params = shape.offset[4];
    if (fit->momentum != 0.0f) {
        for (uint32_t i = 0; i < params; i++) {
            v[i] = fit->momentum * v[i] - fit->learning_rate * g[i];
            w[i] += v[i];
        }
    } else {
        for (uint32_t i = 0; i < params; i++) w[i] -= fit->learning_rate * g[i];
    }
}

static int check(const iomt_head *global, const iomt_fit_settings *fit) {
    const iomt_ring_info *ring = iomt_ring_info_get();
    if (fit->batch_size == 0 || !(fit->learning_rate > 0.0f)) return IOMT_TRAIN_SETTINGS;
    if (ring->count == 0) return IOMT_TRAIN_NO_DATA;
    if (ring->width != global->inputs || global->inputs > IOMT_TRAIN_MAX_INPUTS) return IOMT_TRAIN_SHAPE;
    plan(global);
    if (shape.offset[4] > IOMT_TRAIN_MAX_PARAMS) return IOMT_TRAIN_TOO_LARGE;
    return IOMT_TRAIN_OK;
}

/* One batch of examples order[first, first + size): gradient, regularisers, step. */
static float train_batch(const iomt_head *global, const iomt_fit_settings *fit, uint32_t first, uint32_t size) {
    uint32_t params = shape.offset[4];
    float *w = pool, *v = pool + params, *g = pool + 2u * params, loss = 0.0f;
    memset(g, 0, params * sizeof(float));
    float inv_batch = 1.0f / (float)size;
    for (uint32_t n = first; n < first + size; n++) {
        uint8_t label = iomt_ring_read(order[n], x);
        loss += accumulate(w, g, label, inv_batch);
    }
    loss = loss / (float)size + regularise(global, w, g, fit);
    step(w, v, g, fit);
    return loss;
}

static int labels_fit(uint16_t classes) {
    const iomt_ring_info *ring = iomt_ring_info_get();
    for (uint32_t n = 0; n < ring->count; n++) {
        if (iomt_ring_read(n, x) >= classes) return 0;
    }
    return 1;
}

int iomt_train_run(const iomt_head *global, const iomt_fit_settings *fit, iomt_train_result *result) {
    trained = 0;
    int status = check(global, fit);
    if (status != IOMT_TRAIN_OK) return status;
    if (!labels_fit(global->classes)) return IOMT_TRAIN_SHAPE;
    uint32_t params = shape.offset[4], count = iomt_ring_info_get()->count;
    load_global(global, pool);
    memset(pool + params, 0, params * sizeof(float));
    iomt_rng rng;
    iomt_rng_seed(&rng, fit->seed);
    float epoch_loss = 0.0f;
    for (uint16_t epoch = 0; epoch < fit->epochs; epoch++) {
        iomt_rng_permutation(&rng, order, count);
        float sum = 0.0f;
        uint32_t batches = 0;
        for (uint32_t first = 0; first < count; first += fit->batch_size, batches++) {
            uint32_t size = count - first < fit->batch_size ? count - first : fit->batch_size;
            sum += train_batch(global, fit, first, size);
        }
        epoch_loss = sum / (float)batches;
    }
    for (int t = 0; t < 4; t++) {
        const uint8_t *src = tensor_bytes(global, t);
        for (uint32_t i = shape.offset[t]; i < shape.offset[t + 1]; i++) pool[i] -= iomt_get_f32(src + 4u * (i - shape.offset[t]));
    }
    result->num_examples = count;
    result->params = params;
    result->loss = epoch_loss;
    trained = 1;
    return IOMT_TRAIN_OK;
}

const float *iomt_train_delta(uint8_t tensor, uint32_t *count) {
    if (!trained || tensor > 3) {
        *count = 0;
        return NULL;
    }
    *count = shape.offset[tensor + 1] - shape.offset[tensor];
    return pool + shape.offset[tensor];
}

uint8_t *iomt_train_scratch(uint32_t *bytes) {
    *bytes = trained ? 4u * shape.offset[4] : 0;
    return (uint8_t *)(pool + shape.offset[4]);
}

uint32_t iomt_train_static_bytes(void) {
    return (uint32_t)(sizeof(pool) + sizeof(order) + sizeof(x) + sizeof(z0) + sizeof(hidden) + sizeof(d_hidden) + sizeof(probs));
}
