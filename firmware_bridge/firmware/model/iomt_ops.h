/* The ops the generated plan calls: one struct per op (tensor indices and static shape from the
 * generator, pointers and quantisation parameters filled by *_bind from the image), a bind and
 * an eval per kind. Evals call TensorFlow Lite's reference kernels (fetched at build time).
 */
#ifndef IOMT_OPS_H_
#define IOMT_OPS_H_

#include <stdint.h>

#include "iomt_plan.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IOMT_MAX_CONCAT_INPUTS 4
#define IOMT_MAX_COPY_RANK 5

typedef struct { /* CONV_2D, per-channel int8 (NHWC; Conv1D arrives with H = 1) */
  int16_t input, filter, bias, output;
  int8_t activation;
  int16_t stride_w, stride_h, dilation_w, dilation_h, pad_w, pad_h;
  int32_t *multiplier, *shift; /* [output channels], generated storage */
  const int8_t *in_data, *filter_data;
  const int32_t *bias_data;
  int8_t *out_data;
  int32_t input_offset, output_offset, act_min, act_max;
} iomt_conv_op;

typedef struct { /* FULLY_CONNECTED, per-channel or per-tensor int8 */
  int16_t input, filter, bias, output;
  int8_t activation;
  int32_t *multiplier; /* [output units] */
  int *shift;
  const int8_t *in_data, *filter_data;
  const int32_t *bias_data;
  int8_t *out_data;
  int32_t input_offset, output_offset, act_min, act_max;
} iomt_fc_op;

typedef struct { /* AVERAGE_POOL_2D int8 */
  int16_t input, output;
  int8_t activation;
  int16_t stride_w, stride_h, filter_w, filter_h, pad_w, pad_h;
  const int8_t *in_data;
  int8_t *out_data;
  int32_t act_min, act_max;
} iomt_avgpool_op;

typedef struct { /* MEAN int8 over constant axes */
  int16_t input, output;
  int8_t keep_dims, axis_count;
  int32_t axis[4];
  int32_t temp_sum_offset; /* int32 [output elements] scratch in the arena */
  const int8_t *in_data;
  int8_t *out_data;
  int32_t *temp_sum;
  int32_t multiplier, shift, input_zero_point, output_zero_point;
} iomt_mean_op;

typedef struct { /* QUANTIZE int8 -> int8 (requantize) */
  int16_t input, output;
  const int8_t *in_data;
  int8_t *out_data;
  int32_t multiplier, shift, input_zero_point, output_zero_point, size;
} iomt_requantize_op;

typedef struct { /* CONCATENATION int8 with equal scales (what the converter emits) */
  int16_t inputs[IOMT_MAX_CONCAT_INPUTS], output;
  int8_t input_count, axis;
  const int8_t *in_data[IOMT_MAX_CONCAT_INPUTS];
  int8_t *out_data;
} iomt_concat_op;

typedef struct { /* SOFTMAX int8 -> int8 */
  int16_t input, output;
  float beta;
  const int8_t *in_data;
  int8_t *out_data;
  int32_t input_multiplier, input_left_shift, diff_min;
} iomt_softmax_op;

typedef struct { /* TRANSPOSE, STRIDED_SLICE, REVERSE_V2: out[i] = in[base + sum i_d * step_d] */
  int16_t input, output;
  int8_t rank;
  int32_t dims[IOMT_MAX_COPY_RANK]; /* output shape */
  int32_t base, step[IOMT_MAX_COPY_RANK];
  const int8_t *in_data;
  int8_t *out_data;
} iomt_copy_op;

typedef struct { /* UNIDIRECTIONAL_SEQUENCE_LSTM, integer 8x8->16, no CIFG/peephole/projection */
  int16_t input, weights[8], biases[4], output_state, cell_state, output, hidden;
  int16_t n_batch, n_time, n_input, n_cell, n_output;
  int8_t time_major;
  float cell_clip;
  int32_t scratch_offset;      /* 4 x int16 gates, int8 and int32 scratch, [n_cell] each */
  int32_t *effective_bias;     /* 8 x [n_cell]: bias + zero point x weight row sums */
  const int8_t *in_data, *weight_data[8];
  int8_t *out_data, *output_state_data;
  int16_t *cell_state_data, *gates[4];
  int8_t *scratch_int8;
  int32_t *scratch_int32;
  int32_t scale_a[9], scale_b[9]; /* 4 input-to-gate, 4 recurrent-to-gate, hidden */
  int32_t cell_scale, hidden_zero_point, output_state_zero_point;
  int16_t quantized_cell_clip;
} iomt_lstm_op;

int iomt_conv_bind(iomt_conv_op *op, const iomt_bind *bind);
void iomt_conv_eval(const iomt_conv_op *op);
int iomt_fc_bind(iomt_fc_op *op, const iomt_bind *bind);
void iomt_fc_eval(const iomt_fc_op *op);
int iomt_avgpool_bind(iomt_avgpool_op *op, const iomt_bind *bind);
void iomt_avgpool_eval(const iomt_avgpool_op *op);
int iomt_mean_bind(iomt_mean_op *op, const iomt_bind *bind);
void iomt_mean_eval(const iomt_mean_op *op);
int iomt_requantize_bind(iomt_requantize_op *op, const iomt_bind *bind);
void iomt_requantize_eval(const iomt_requantize_op *op);
int iomt_concat_bind(iomt_concat_op *op, const iomt_bind *bind);
void iomt_concat_eval(const iomt_concat_op *op);
int iomt_softmax_bind(iomt_softmax_op *op, const iomt_bind *bind);
void iomt_softmax_eval(const iomt_softmax_op *op);
int iomt_copy_bind(iomt_copy_op *op, const iomt_bind *bind);
void iomt_copy_eval(const iomt_copy_op *op);
int iomt_lstm_bind(iomt_lstm_op *op, const iomt_bind *bind);
void iomt_lstm_eval(const iomt_lstm_op *op);

#ifdef __cplusplus
}
#endif

#endif /* IOMT_OPS_H_ */
