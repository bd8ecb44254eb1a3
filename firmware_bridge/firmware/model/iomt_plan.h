/* The plan a generator (convert/firmware_plan.py) writes for one graph, and the bind context.
 *
 * The plan is what the graph must be: every tensor's type, shape and constant size, every op's
 * code, version, tensors and scalar options, and the int32 constants that shape the graph
 * (axes, permutations, slice bounds). iomt_backbone_bind checks an image against it field by
 * field, so an image of the same graph with other weights (a retrained model) binds, and any
 * other graph is refused. Activations live at fixed offsets of one arena planned ahead.
 */
#ifndef IOMT_PLAN_H_
#define IOMT_PLAN_H_

#include <stdint.h>

#include "iomt_tflite_reader.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
  IOMT_ERR_IMAGE = -1,      /* not a readable .tflite image */
  IOMT_ERR_GRAPH = -2,      /* a different graph from the one the firmware was generated for */
  IOMT_ERR_QUANT = -3,      /* quantisation the kernels cannot run (e.g. a zero scale) */
  IOMT_ERR_UNBOUND = -4     /* invoke before a successful bind */
};

#define IOMT_NOT_IN_ARENA (-1)

typedef struct {
  int8_t type;              /* TensorType */
  uint8_t rank;
  uint8_t is_variable;
  uint8_t scale_count;      /* quantisation scales: 0, 1 or one per channel (capped at 255) */
  int32_t dims[IOMT_TFLITE_MAX_RANK];
  uint32_t const_bytes;     /* bytes of constant data, 0 for activations */
  int32_t arena_offset;     /* IOMT_NOT_IN_ARENA for constants and unused tensors */
} iomt_plan_tensor;

typedef struct {
  int16_t builtin;
  int16_t version;
  uint16_t tensors;         /* first of its entries in op_tensors: inputs, outputs, intermediates */
  uint8_t input_count, output_count, intermediate_count;
  int8_t options_type;
  uint16_t options;         /* first of its entries in options */
  uint8_t option_count;
} iomt_plan_op;

typedef struct {
  uint8_t field;            /* field number in the op's options table */
  uint8_t width;            /* bytes: 1, 2 or 4 (floats compare as bit patterns) */
  int32_t value;
  int32_t fallback;         /* schema default, what an absent field means */
} iomt_plan_option;

typedef struct {
  int16_t tensor;           /* an int32 constant whose values shape the graph */
  uint16_t start, count;    /* its expected values in const_values */
} iomt_plan_constant;

typedef struct {
  uint32_t tensor_count, op_count, constant_count;
  const iomt_plan_tensor *tensors;
  const iomt_plan_op *ops;
  const int16_t *op_tensors;
  const iomt_plan_option *options;
  const iomt_plan_constant *constants;
  const int32_t *constant_values;
  int16_t input, output;    /* graph input and output tensors */
  uint32_t arena_bytes;
} iomt_plan;

typedef struct {
  iomt_tflite model;
  const iomt_plan *plan;
  uint8_t *arena;
} iomt_bind;

/* Check the image against the plan: 0, or IOMT_ERR_IMAGE / IOMT_ERR_GRAPH. */
int iomt_plan_check(const iomt_plan *plan, const iomt_tflite *model);
/* An activation's place in the arena (NULL for a constant). */
void *iomt_bind_activation(const iomt_bind *bind, int16_t tensor);
/* A constant's data in the image (NULL for an absent optional tensor). */
const void *iomt_bind_constant(const iomt_bind *bind, int16_t tensor);
float iomt_bind_scale(const iomt_bind *bind, int16_t tensor, uint32_t channel);
int32_t iomt_bind_zero_point(const iomt_bind *bind, int16_t tensor);
const int32_t *iomt_bind_dims(const iomt_bind *bind, int16_t tensor);
int32_t iomt_bind_elements(const iomt_bind *bind, int16_t tensor);

/* Generated per graph (iomt_model_plan.c). */
extern const iomt_plan iomt_model_plan;
extern uint8_t iomt_model_arena[];
int iomt_model_bind_ops(const iomt_bind *bind);
void iomt_model_eval_ops(uint8_t *arena);

#ifdef __cplusplus
}
#endif

#endif /* IOMT_PLAN_H_ */
