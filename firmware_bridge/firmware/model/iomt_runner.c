/* iomt_backbone_bind / iomt_backbone_invoke over a generated plan (see iomt_plan.h).
 *
 * Bind checks the image against the plan, then lets the generated code bind every op: weight
 * pointers into the image and the quantisation parameters computed from the image's scales,
 * exactly as TensorFlow Lite's kernels prepare them. Invoke copies the window into the arena,
 * resets the recurrent state, runs the generated op sequence and copies the output out.
 */
#include <string.h>

#include "iomt_backbone.h"
#include "iomt_plan.h"

enum { TYPE_INT8 = 9, TYPE_INT16 = 7 };

static iomt_bind g_bind;
static int g_bound;

static int check_tensor(const iomt_plan_tensor *want, const iomt_tflite_tensor *got) {
  if (want->type != got->type || want->rank != got->rank) return 0;
  if (want->is_variable != (got->is_variable != 0)) return 0;
  uint32_t scales = got->scale_count > 255 ? 255 : got->scale_count;
  if (want->scale_count != scales || want->const_bytes != got->data_len) return 0;
  for (uint32_t d = 0; d < want->rank; ++d) {
    if (want->dims[d] != got->dims[d]) return 0;
  }
  return 1;
}

static int check_op(const iomt_plan *plan, uint32_t index, const iomt_tflite *model) {
  const iomt_plan_op *want = &plan->ops[index];
  iomt_tflite_op got;
  if (iomt_tflite_read_op(model, index, &got) != IOMT_TFLITE_OK) return 0;
  if (want->builtin != got.builtin || want->version != got.version) return 0;
  if (want->input_count != got.input_count || want->output_count != got.output_count ||
      want->intermediate_count != got.intermediate_count ||
      want->options_type != got.options_type) {
    return 0;
  }
  const int16_t *tensors = &plan->op_tensors[want->tensors];
  for (uint32_t k = 0; k < got.input_count; ++k) {
    if (*tensors++ != iomt_tflite_index(model, got.inputs, k)) return 0;
  }
  for (uint32_t k = 0; k < got.output_count; ++k) {
    if (*tensors++ != iomt_tflite_index(model, got.outputs, k)) return 0;
  }
  for (uint32_t k = 0; k < got.intermediate_count; ++k) {
    if (*tensors++ != iomt_tflite_index(model, got.intermediates, k)) return 0;
  }
  for (uint32_t k = 0; k < want->option_count; ++k) {
    const iomt_plan_option *option = &plan->options[want->options + k];
    if (iomt_tflite_option(model, &got, option->field, option->width, option->fallback) !=
        option->value) {
      return 0;
    }
  }
  return 1;
}

static int check_constant(const iomt_plan *plan, const iomt_plan_constant *constant,
                          const iomt_tflite *model) {
  iomt_tflite_tensor tensor;
  if (iomt_tflite_read_tensor(model, (uint32_t)constant->tensor, &tensor) != IOMT_TFLITE_OK ||
      tensor.data_len != 4u * constant->count) {
    return 0;
  }
  return memcmp(tensor.data, &plan->constant_values[constant->start], tensor.data_len) == 0;
}

int iomt_plan_check(const iomt_plan *plan, const iomt_tflite *model) {
  if (model->subgraph_count != 1 || iomt_tflite_tensor_count(model) != plan->tensor_count ||
      iomt_tflite_op_count(model) != plan->op_count) {
    return IOMT_ERR_GRAPH;
  }
  for (uint32_t t = 0; t < plan->tensor_count; ++t) {
    iomt_tflite_tensor tensor;
    int status = iomt_tflite_read_tensor(model, t, &tensor);
    if (status == IOMT_TFLITE_BAD_IMAGE) return IOMT_ERR_IMAGE;
    if (status != IOMT_TFLITE_OK || !check_tensor(&plan->tensors[t], &tensor)) {
      return IOMT_ERR_GRAPH;
    }
  }
  for (uint32_t op = 0; op < plan->op_count; ++op) {
    if (!check_op(plan, op, model)) return IOMT_ERR_GRAPH;
  }
  for (uint32_t c = 0; c < plan->constant_count; ++c) {
    if (!check_constant(plan, &plan->constants[c], model)) return IOMT_ERR_GRAPH;
  }
  return 0;
}

void *iomt_bind_activation(const iomt_bind *bind, int16_t tensor) {
  int32_t offset = bind->plan->tensors[tensor].arena_offset;
  return offset == IOMT_NOT_IN_ARENA ? NULL : bind->arena + offset;
}

const void *iomt_bind_constant(const iomt_bind *bind, int16_t tensor) {
  iomt_tflite_tensor t;
  if (tensor < 0 || iomt_tflite_read_tensor(&bind->model, (uint32_t)tensor, &t) != 0) {
    return NULL;
  }
  return t.data;
}

float iomt_bind_scale(const iomt_bind *bind, int16_t tensor, uint32_t channel) {
  iomt_tflite_tensor t;
  if (iomt_tflite_read_tensor(&bind->model, (uint32_t)tensor, &t) != 0) return 0.0f;
  return iomt_tflite_scale(&bind->model, &t, channel);
}

int32_t iomt_bind_zero_point(const iomt_bind *bind, int16_t tensor) {
  iomt_tflite_tensor t;
  if (iomt_tflite_read_tensor(&bind->model, (uint32_t)tensor, &t) != 0) return 0;
  return iomt_tflite_zero_point(&bind->model, &t, 0);
}

const int32_t *iomt_bind_dims(const iomt_bind *bind, int16_t tensor) {
  return bind->plan->tensors[tensor].dims;
}

int32_t iomt_bind_elements(const iomt_bind *bind, int16_t tensor) {
  const iomt_plan_tensor *t = &bind->plan->tensors[tensor];
  int32_t count = 1;
  for (uint32_t d = 0; d < t->rank; ++d) count *= t->dims[d];
  return count;
}

static void describe(const iomt_bind *bind, iomt_backbone_info *info) {
  const iomt_plan *plan = bind->plan;
  const iomt_plan_tensor *input = &plan->tensors[plan->input];
  memset(info, 0, sizeof(*info));
  info->input_len = (uint32_t)iomt_bind_elements(bind, plan->input);
  info->time = input->rank == 3 ? (uint16_t)input->dims[1] : 1;
  info->channels = (uint16_t)input->dims[input->rank - 1];
  info->embedding_len = (uint32_t)iomt_bind_elements(bind, plan->output);
  info->input_scale = iomt_bind_scale(bind, plan->input, 0);
  info->input_zero_point = iomt_bind_zero_point(bind, plan->input);
  info->output_scale = iomt_bind_scale(bind, plan->output, 0);
  info->output_zero_point = iomt_bind_zero_point(bind, plan->output);
  info->arena_bytes = plan->arena_bytes;
}

int iomt_backbone_bind(const uint8_t *tflite, uint32_t len, iomt_backbone_info *info) {
  g_bound = 0;
  g_bind.plan = &iomt_model_plan;
  g_bind.arena = iomt_model_arena;
  if (iomt_tflite_open(&g_bind.model, tflite, len) != IOMT_TFLITE_OK) return IOMT_ERR_IMAGE;
  int status = iomt_plan_check(&iomt_model_plan, &g_bind.model);
  if (status == 0) status = iomt_model_bind_ops(&g_bind);
  if (status != 0) return status;
  if (info != NULL) describe(&g_bind, info);
  g_bound = 1;
  return 0;
}

static int32_t type_bytes(int8_t type) {
  switch (type) {
    case TYPE_INT8: return 1;
    case TYPE_INT16: return 2;
    default: return 4; /* INT32, FLOAT32 */
  }
}

/* TensorFlow Lite's reset: int8 variables to their zero point, all others to 0. */
static void reset_state(const iomt_bind *bind) {
  const iomt_plan *plan = bind->plan;
  for (uint32_t t = 0; t < plan->tensor_count; ++t) {
    const iomt_plan_tensor *tensor = &plan->tensors[t];
    if (!tensor->is_variable || tensor->arena_offset == IOMT_NOT_IN_ARENA) continue;
    int32_t bytes = iomt_bind_elements(bind, (int16_t)t) * type_bytes(tensor->type);
    int value = tensor->type == TYPE_INT8 ? iomt_bind_zero_point(bind, (int16_t)t) : 0;
    memset(bind->arena + tensor->arena_offset, value, (size_t)bytes);
  }
}

int iomt_backbone_invoke(const int8_t *input, int8_t *embedding) {
  if (!g_bound) return IOMT_ERR_UNBOUND;
  const iomt_plan *plan = g_bind.plan;
  memcpy(iomt_bind_activation(&g_bind, plan->input), input,
         (size_t)iomt_bind_elements(&g_bind, plan->input));
  reset_state(&g_bind);
  iomt_model_eval_ops(g_bind.arena);
  memcpy(embedding, iomt_bind_activation(&g_bind, plan->output),
         (size_t)iomt_bind_elements(&g_bind, plan->output));
  return 0;
}
