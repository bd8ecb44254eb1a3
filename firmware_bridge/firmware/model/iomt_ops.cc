// Binds and evals of the non-recurrent ops (iomt_ops.h) on TensorFlow Lite's reference kernels.
//
// Each bind computes what the matching TensorFlow Lite kernel's Prepare computes, with the same
// arithmetic (the same float and double expressions, QuantizeMultiplier), so the integer
// parameters, and hence the outputs, match LiteRT's.
#include <string.h>

#include <cmath>

#include "iomt_fast_conv.h"
#include "iomt_ops.h"
#include "tensorflow/lite/kernels/internal/quantization_util.h"
#include "tensorflow/lite/kernels/internal/reference/concatenation.h"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/conv.h"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/fully_connected.h"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/pooling.h"
#include "tensorflow/lite/kernels/internal/reference/reduce.h"
#include "tensorflow/lite/kernels/internal/reference/requantize.h"
#include "tensorflow/lite/kernels/internal/reference/softmax.h"

namespace {

enum Activation { kNone = 0, kRelu = 1, kReluN1To1 = 2, kRelu6 = 3 };

int32_t Quantize(float value, float scale, int32_t zero_point) {
  return zero_point + static_cast<int32_t>(std::round(value / scale));
}

// tflite::CalculateActivationRangeQuantized for an int8 output.
int ActivationRange(int activation, float scale, int32_t zero_point, int32_t* act_min,
                    int32_t* act_max) {
  const int32_t qmin = -128, qmax = 127;
  *act_min = qmin;
  *act_max = qmax;
  if (activation == kRelu) {
    *act_min = std::max(qmin, Quantize(0.0f, scale, zero_point));
  } else if (activation == kRelu6) {
    *act_min = std::max(qmin, Quantize(0.0f, scale, zero_point));
    *act_max = std::min(qmax, Quantize(6.0f, scale, zero_point));
  } else if (activation == kReluN1To1) {
    *act_min = std::max(qmin, Quantize(-1.0f, scale, zero_point));
    *act_max = std::min(qmax, Quantize(1.0f, scale, zero_point));
  } else if (activation != kNone) {
    return IOMT_ERR_GRAPH;
  }
  return 0;
}

// tflite::PopulateConvolutionQuantizationParams: one multiplier per output channel.
template <typename Shift>
int PerChannelMultipliers(const iomt_bind* bind, int16_t input, int16_t filter, int16_t output,
                          int32_t channels, int32_t* multiplier, Shift* shift) {
  const float input_scale = iomt_bind_scale(bind, input, 0);
  const float output_scale = iomt_bind_scale(bind, output, 0);
  const bool per_channel = bind->plan->tensors[filter].scale_count > 1;
  if (input_scale == 0.0f || output_scale == 0.0f) return IOMT_ERR_QUANT;
  for (int32_t c = 0; c < channels; ++c) {
    const float scale = iomt_bind_scale(bind, filter, per_channel ? c : 0);
    const double effective = static_cast<double>(input_scale) * static_cast<double>(scale) /
                             static_cast<double>(output_scale);
    int exponent = 0;
    tflite::QuantizeMultiplier(effective, &multiplier[c], &exponent);
    shift[c] = exponent;
  }
  return 0;
}

tflite::RuntimeShape Shape(const iomt_bind* bind, int16_t tensor) {
  const iomt_plan_tensor* t = &bind->plan->tensors[tensor];
  return tflite::RuntimeShape(t->rank, t->dims);
}

const iomt_bind* g_bind = nullptr;  // the bind in force, for the shapes evals pass the kernels

tflite::RuntimeShape Shape(int16_t tensor) { return Shape(g_bind, tensor); }

}  // namespace

extern "C" {

int iomt_conv_bind(iomt_conv_op* op, const iomt_bind* bind) {
  g_bind = bind;
  op->in_data = static_cast<const int8_t*>(iomt_bind_activation(bind, op->input));
  op->out_data = static_cast<int8_t*>(iomt_bind_activation(bind, op->output));
  op->filter_data = static_cast<const int8_t*>(iomt_bind_constant(bind, op->filter));
  op->bias_data = static_cast<const int32_t*>(iomt_bind_constant(bind, op->bias));
  op->input_offset = -iomt_bind_zero_point(bind, op->input);
  op->output_offset = iomt_bind_zero_point(bind, op->output);
  const int32_t channels = iomt_bind_dims(bind, op->filter)[0];
  int status = PerChannelMultipliers(bind, op->input, op->filter, op->output, channels,
                                     op->multiplier, op->shift);
  if (status != 0) return status;
  return ActivationRange(op->activation, iomt_bind_scale(bind, op->output, 0), op->output_offset,
                         &op->act_min, &op->act_max);
}

void iomt_conv_eval(const iomt_conv_op* op) {
  tflite::ConvParams params = {};
  params.input_offset = op->input_offset;
  params.output_offset = op->output_offset;
  params.stride_width = op->stride_w;
  params.stride_height = op->stride_h;
  params.dilation_width_factor = op->dilation_w;
  params.dilation_height_factor = op->dilation_h;
  params.padding_values.width = op->pad_w;
  params.padding_values.height = op->pad_h;
  params.quantized_activation_min = op->act_min;
  params.quantized_activation_max = op->act_max;
  const tflite::RuntimeShape input = Shape(op->input), filter = Shape(op->filter);
  const tflite::RuntimeShape output = Shape(op->output);
  if (iomt::FastConvPerChannel(params, op->multiplier, op->shift, input, op->in_data, filter,
                               op->filter_data, op->bias_data, output, op->out_data)) {
    return;
  }
  tflite::reference_integer_ops::ConvPerChannel(params, op->multiplier, op->shift, input,
                                                op->in_data, filter, op->filter_data,
                                                Shape(op->bias), op->bias_data, output,
                                                op->out_data);
}

int iomt_fc_bind(iomt_fc_op* op, const iomt_bind* bind) {
  g_bind = bind;
  op->in_data = static_cast<const int8_t*>(iomt_bind_activation(bind, op->input));
  op->out_data = static_cast<int8_t*>(iomt_bind_activation(bind, op->output));
  op->filter_data = static_cast<const int8_t*>(iomt_bind_constant(bind, op->filter));
  op->bias_data =
      op->bias < 0 ? nullptr : static_cast<const int32_t*>(iomt_bind_constant(bind, op->bias));
  op->input_offset = -iomt_bind_zero_point(bind, op->input);
  op->output_offset = iomt_bind_zero_point(bind, op->output);
  const int32_t units = iomt_bind_dims(bind, op->filter)[0];
  int status = PerChannelMultipliers(bind, op->input, op->filter, op->output, units,
                                     op->multiplier, op->shift);
  if (status != 0) return status;
  return ActivationRange(op->activation, iomt_bind_scale(bind, op->output, 0), op->output_offset,
                         &op->act_min, &op->act_max);
}

void iomt_fc_eval(const iomt_fc_op* op) {
  tflite::FullyConnectedParams params = {};
  params.input_offset = op->input_offset;
  params.output_offset = op->output_offset;
  params.quantized_activation_min = op->act_min;
  params.quantized_activation_max = op->act_max;
  const tflite::RuntimeShape filter = Shape(op->filter);
  const int32_t units = filter.Dims(0);
  const int32_t batches = Shape(op->input).FlatSize() / filter.Dims(1);
  const int32_t out_dims[2] = {batches, units};  // the kernel reads the output as [batch, units]
  const tflite::RuntimeShape bias(1, &units);
  tflite::reference_integer_ops::FullyConnectedPerChannel(
      params, op->multiplier, op->shift, Shape(op->input), op->in_data, filter, op->filter_data,
      bias, op->bias_data, tflite::RuntimeShape(2, out_dims), op->out_data);
}

int iomt_avgpool_bind(iomt_avgpool_op* op, const iomt_bind* bind) {
  g_bind = bind;
  op->in_data = static_cast<const int8_t*>(iomt_bind_activation(bind, op->input));
  op->out_data = static_cast<int8_t*>(iomt_bind_activation(bind, op->output));
  return ActivationRange(op->activation, iomt_bind_scale(bind, op->output, 0),
                         iomt_bind_zero_point(bind, op->output), &op->act_min, &op->act_max);
}

void iomt_avgpool_eval(const iomt_avgpool_op* op) {
  tflite::PoolParams params = {};
  params.stride_width = op->stride_w;
  params.stride_height = op->stride_h;
  params.filter_width = op->filter_w;
  params.filter_height = op->filter_h;
  params.padding_values.width = op->pad_w;
  params.padding_values.height = op->pad_h;
  params.quantized_activation_min = op->act_min;
  params.quantized_activation_max = op->act_max;
  tflite::reference_integer_ops::AveragePool(params, Shape(op->input), op->in_data,
                                             Shape(op->output), op->out_data);
}

int iomt_mean_bind(iomt_mean_op* op, const iomt_bind* bind) {
  g_bind = bind;
  op->in_data = static_cast<const int8_t*>(iomt_bind_activation(bind, op->input));
  op->out_data = static_cast<int8_t*>(iomt_bind_activation(bind, op->output));
  op->temp_sum = reinterpret_cast<int32_t*>(bind->arena + op->temp_sum_offset);
  op->input_zero_point = iomt_bind_zero_point(bind, op->input);
  op->output_zero_point = iomt_bind_zero_point(bind, op->output);
  const float input_scale = iomt_bind_scale(bind, op->input, 0);
  const float output_scale = iomt_bind_scale(bind, op->output, 0);
  if (input_scale == 0.0f || output_scale == 0.0f) return IOMT_ERR_QUANT;
  const double real_multiplier =
      static_cast<double>(input_scale) / static_cast<double>(output_scale);
  int exponent = 0;
  tflite::QuantizeMultiplier(real_multiplier, &op->multiplier, &exponent);
  op->shift = exponent;
  return 0;
}

void iomt_mean_eval(const iomt_mean_op* op) {
  const iomt_plan_tensor* in = &g_bind->plan->tensors[op->input];
  const iomt_plan_tensor* out = &g_bind->plan->tensors[op->output];
  int in_dims[IOMT_TFLITE_MAX_RANK], out_dims[IOMT_TFLITE_MAX_RANK], axis[4];
  int temp_index[IOMT_TFLITE_MAX_RANK], resolved_axis[4];
  for (int d = 0; d < in->rank; ++d) in_dims[d] = in->dims[d];
  for (int d = 0; d < out->rank; ++d) out_dims[d] = out->dims[d];
  for (int a = 0; a < op->axis_count; ++a) axis[a] = op->axis[a];
  tflite::reference_ops::QuantizedMeanOrSum<int8_t, int32_t>(
      op->in_data, op->input_zero_point, in_dims, in->rank, op->out_data, op->multiplier,
      op->shift, op->output_zero_point, out_dims, out->rank, axis, op->axis_count,
      op->keep_dims != 0, temp_index, resolved_axis, op->temp_sum, /*compute_sum=*/false);
}

int iomt_requantize_bind(iomt_requantize_op* op, const iomt_bind* bind) {
  g_bind = bind;
  op->in_data = static_cast<const int8_t*>(iomt_bind_activation(bind, op->input));
  op->out_data = static_cast<int8_t*>(iomt_bind_activation(bind, op->output));
  op->input_zero_point = iomt_bind_zero_point(bind, op->input);
  op->output_zero_point = iomt_bind_zero_point(bind, op->output);
  op->size = iomt_bind_elements(bind, op->input);
  const float input_scale = iomt_bind_scale(bind, op->input, 0);
  const float output_scale = iomt_bind_scale(bind, op->output, 0);
  if (input_scale == 0.0f || output_scale == 0.0f) return IOMT_ERR_QUANT;
  const double effective =
      static_cast<double>(input_scale) / static_cast<double>(output_scale);
  int exponent = 0;
  tflite::QuantizeMultiplier(effective, &op->multiplier, &exponent);
  op->shift = exponent;
  return 0;
}

void iomt_requantize_eval(const iomt_requantize_op* op) {
  tflite::reference_ops::Requantize<int8_t, int8_t>(op->in_data, op->size, op->multiplier,
                                                    op->shift, op->input_zero_point,
                                                    op->output_zero_point, op->out_data);
}

int iomt_concat_bind(iomt_concat_op* op, const iomt_bind* bind) {
  g_bind = bind;
  const float scale = iomt_bind_scale(bind, op->output, 0);
  const int32_t zero_point = iomt_bind_zero_point(bind, op->output);
  for (int k = 0; k < op->input_count; ++k) {
    // TensorFlow Lite's int8 concatenation copies bytes: it requires equal quantisation.
    if (iomt_bind_scale(bind, op->inputs[k], 0) != scale ||
        iomt_bind_zero_point(bind, op->inputs[k]) != zero_point) {
      return IOMT_ERR_QUANT;
    }
    op->in_data[k] = static_cast<const int8_t*>(iomt_bind_activation(bind, op->inputs[k]));
  }
  op->out_data = static_cast<int8_t*>(iomt_bind_activation(bind, op->output));
  return 0;
}

void iomt_concat_eval(const iomt_concat_op* op) {
  tflite::RuntimeShape shapes[IOMT_MAX_CONCAT_INPUTS];
  const tflite::RuntimeShape* shape_pointers[IOMT_MAX_CONCAT_INPUTS];
  for (int k = 0; k < op->input_count; ++k) {
    const iomt_plan_tensor* t = &g_bind->plan->tensors[op->inputs[k]];
    shapes[k].ReplaceWith(t->rank, t->dims);
    shape_pointers[k] = &shapes[k];
  }
  tflite::ConcatenationParams params = {};
  params.axis = op->axis;
  params.inputs_count = op->input_count;
  tflite::reference_ops::Concatenation<int8_t>(params, shape_pointers, op->in_data,
                                               Shape(op->output), op->out_data);
}

int iomt_softmax_bind(iomt_softmax_op* op, const iomt_bind* bind) {
  g_bind = bind;
  op->in_data = static_cast<const int8_t*>(iomt_bind_activation(bind, op->input));
  op->out_data = static_cast<int8_t*>(iomt_bind_activation(bind, op->output));
  const int kScaledDiffIntegerBits = 5;  // as TensorFlow Lite's SoftmaxPrepare (reference)
  int input_left_shift = 0;
  tflite::PreprocessSoftmaxScaling(static_cast<double>(op->beta),
                                   static_cast<double>(iomt_bind_scale(bind, op->input, 0)),
                                   kScaledDiffIntegerBits, &op->input_multiplier,
                                   &input_left_shift);
  op->input_left_shift = input_left_shift;
  op->diff_min = static_cast<int32_t>(
      -1.0 * tflite::CalculateInputRadius(kScaledDiffIntegerBits, input_left_shift));
  return 0;
}

void iomt_softmax_eval(const iomt_softmax_op* op) {
  tflite::SoftmaxParams params = {};
  params.input_multiplier = op->input_multiplier;
  params.input_left_shift = op->input_left_shift;
  params.diff_min = op->diff_min;
  tflite::reference_ops::Softmax(params, Shape(op->input), op->in_data, Shape(op->output),
                                 op->out_data);
}

int iomt_copy_bind(iomt_copy_op* op, const iomt_bind* bind) {
  g_bind = bind;
  op->in_data = static_cast<const int8_t*>(iomt_bind_activation(bind, op->input));
  op->out_data = static_cast<int8_t*>(iomt_bind_activation(bind, op->output));
  return 0;
}

// Pure data movement (no arithmetic): the generator derives base and steps from the op.
void iomt_copy_eval(const iomt_copy_op* op) {
  int32_t index[IOMT_MAX_COPY_RANK] = {0};
  int32_t total = 1;
  for (int d = 0; d < op->rank; ++d) total *= op->dims[d];
  for (int32_t k = 0; k < total; ++k) {
    int32_t source = op->base;
    for (int d = 0; d < op->rank; ++d) source += index[d] * op->step[d];
    op->out_data[k] = op->in_data[source];
    for (int d = op->rank - 1; d >= 0; --d) {  // advance the row-major output index
      if (++index[d] < op->dims[d]) break;
      index[d] = 0;
    }
  }
}

}  // extern "C"
