/* The training messages of docs/serial-protocol.md section 7 (0x50-0x56): fill the embedding
 * ring (pushed by the host, or the device's own last inference labelled), train the head on
 * it for a round, read the delta back in chunks. */
#ifndef IOMT_TRAINING_H
#define IOMT_TRAINING_H

#include "iomt_frame.h"

#define IOMT_TRAINING_VERSION 1 /* announced in INFO, required in TRAIN_ROUND */

enum {
    IOMT_EMBED_RESET = 0x50,
    IOMT_EMBED_PUSH = 0x51,
    IOMT_INFER_LABEL = 0x52,
    IOMT_TRAIN_ROUND = 0x53,
    IOMT_TRAIN_RESULT = 0x54,
    IOMT_DELTA_READ = 0x55,
    IOMT_DELTA_CHUNK = 0x56,
};

/* 1 when `type` is a training request. */
int iomt_training_handles(uint8_t type);
/* Run one training request, sending its reply; 0 or an error code (iomt_errors.h). */
int iomt_training_answer(const iomt_frame_t *frame);

#endif
