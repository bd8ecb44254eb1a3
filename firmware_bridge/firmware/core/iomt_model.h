/* The running model: the int8 backbone image and the float head in the flash partition,
 * upload into the idle slot, inference window -> class scores. Functions return 0 or a
 * protocol error code (iomt_errors.h) with the message in iomt_error_message(). */
#ifndef IOMT_MODEL_H
#define IOMT_MODEL_H

#include <stdint.h>

#include "iomt_backbone.h"
#include "iomt_head.h"

#define IOMT_MAX_INPUT 8192     /* int8 values in a window */
#define IOMT_MAX_EMBEDDING 1024

typedef struct {
    uint16_t predicted_class;
    uint16_t classes;
    uint32_t latency_us;
    float scores[IOMT_HEAD_MAX_CLASSES];
} iomt_infer_result;

/* Mount both records, bind the newest model that binds (falling back to the older slot). */
void iomt_model_boot(void);

/* The bound backbone (NULL when none), its image hash (32 zero bytes when none) and size. */
const iomt_backbone_info *iomt_model_info(void);
void iomt_model_sha256(uint8_t digest[32]);
uint32_t iomt_model_bytes(void);
uint32_t iomt_model_flash_budget(void);
uint16_t iomt_model_classes(void);

int iomt_model_begin(uint32_t size, const uint8_t sha256[32]);
int iomt_model_chunk(uint32_t offset, const uint8_t *data, uint32_t len, uint32_t *next);
int iomt_model_commit(uint32_t *size);
void iomt_model_abort(void);

/* Replace the head (stored in flash, applied at once); the current head's HEAD_SET payload. */
int iomt_model_set_head(const uint8_t *payload, uint32_t len, uint32_t *version);
const uint8_t *iomt_model_head(uint32_t *len);
/* The current head parsed (NULL when none): the global head a training round starts from. */
const iomt_head *iomt_model_current_head(void);
/* The int8 embedding of the last window inferred (NULL when none since boot or a new model). */
const int8_t *iomt_model_last_embedding(void);

/* dtype 0: int8 window fed as is; dtype 2: float32 in sensor units, normalised and quantised. */
int iomt_model_infer(uint8_t dtype, uint16_t time, uint16_t channels, const uint8_t *data,
                     iomt_infer_result *result);

#endif
