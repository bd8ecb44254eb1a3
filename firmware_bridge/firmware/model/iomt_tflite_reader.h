/* A bounds-checked reader of the parts of a .tflite flatbuffer the model runner needs.
 *
 * The image is read in place (in flash): no copy, no allocation. Every offset is checked
 * against the image length, so a truncated or corrupted upload is refused, never followed.
 * Field numbers are those of TensorFlow Lite's schema.fbs (schema version 3).
 */
#ifndef IOMT_TFLITE_READER_H_
#define IOMT_TFLITE_READER_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IOMT_TFLITE_MAX_RANK 5

enum {
  IOMT_TFLITE_OK = 0,
  IOMT_TFLITE_BAD_IMAGE = -1, /* not a flatbuffer with the TFL3 identifier, or out of bounds */
  IOMT_TFLITE_BAD_INDEX = -2  /* a tensor, op or buffer index that the image does not hold */
};

typedef struct {
  const uint8_t *base;
  uint32_t len;
  uint32_t tensors;   /* vector positions inside subgraph 0 and the model */
  uint32_t operators;
  uint32_t opcodes;
  uint32_t buffers;
  uint32_t subgraph_count;
} iomt_tflite;

typedef struct {
  int32_t type;            /* TensorType: 9 INT8, 7 INT16, 2 INT32, 0 FLOAT32 */
  uint32_t rank;
  int32_t dims[IOMT_TFLITE_MAX_RANK];
  uint32_t buffer;
  int32_t is_variable;
  uint32_t scale_count;    /* quantisation scales (floats) and zero points (int64) */
  uint32_t scales;         /* position of the first scale, 0 when none */
  uint32_t zero_point_count;
  uint32_t zero_points;
  int32_t quantized_dimension;
  const uint8_t *data;     /* constant data in the image, NULL for activations */
  uint32_t data_len;
} iomt_tflite_tensor;

typedef struct {
  int32_t builtin;         /* BuiltinOperator */
  int32_t version;
  uint32_t inputs, input_count;    /* int32 vectors of tensor indices (-1: optional, absent) */
  uint32_t outputs, output_count;
  uint32_t intermediates, intermediate_count;
  int32_t options_type;
  uint32_t options;        /* position of the builtin options table, 0 when absent */
} iomt_tflite_op;

int iomt_tflite_open(iomt_tflite *model, const uint8_t *image, uint32_t len);
uint32_t iomt_tflite_tensor_count(const iomt_tflite *model);
uint32_t iomt_tflite_op_count(const iomt_tflite *model);
int iomt_tflite_read_tensor(const iomt_tflite *model, uint32_t index, iomt_tflite_tensor *tensor);
int iomt_tflite_read_op(const iomt_tflite *model, uint32_t index, iomt_tflite_op *op);
/* Element k of an op's inputs/outputs/intermediates vector (position, count as in the op). */
int32_t iomt_tflite_index(const iomt_tflite *model, uint32_t vector, uint32_t k);
/* Scalar field `field` (byte width 1, 2 or 4) of an op's options table; `fallback` (the
 * schema default) when absent. Floats come back as their bit pattern. */
int64_t iomt_tflite_option(const iomt_tflite *model, const iomt_tflite_op *op, uint32_t field,
                           uint32_t width, int64_t fallback);
float iomt_tflite_scale(const iomt_tflite *model, const iomt_tflite_tensor *tensor, uint32_t k);
int32_t iomt_tflite_zero_point(const iomt_tflite *model, const iomt_tflite_tensor *tensor,
                               uint32_t k);

#ifdef __cplusplus
}
#endif

#endif /* IOMT_TFLITE_READER_H_ */
