// UNIDIRECTIONAL_SEQUENCE_LSTM, integer 8x8->16 (int8 activations and weights, int16 cell),
// without CIFG, peephole, layer norm or projection: what the converter makes of a Keras LSTM.
//
// The bind mirrors TensorFlow Lite's PopulateQuantizedLstmParams8x8_16 and
// PopulatePrecomputedZPTimesWeightsWithBias (unidirectional_sequence_lstm.cc); the step mirrors
// LstmStepInteger8x8_16 (lstm_eval.cc), calling the same portable tensor utils.
#include <string.h>

#include <algorithm>
#include <cmath>

#include "iomt_ops.h"
#include "tensorflow/lite/kernels/internal/quantization_util.h"
#include "tensorflow/lite/kernels/internal/reference/portable_tensor_utils_impl.h"

namespace {

namespace tu = tflite::tensor_utils;

enum Gate { kInputGate = 0, kForgetGate = 1, kCellGate = 2, kOutputGate = 3 };
constexpr int kHidden = 8;  // index of the hidden scale in scale_a / scale_b

// Effective scales, in float like TensorFlow Lite, then QuantizeMultiplier.
int BindScales(iomt_lstm_op* op, const iomt_bind* bind) {
  const float input_scale = iomt_bind_scale(bind, op->input, 0);
  const float output_state_scale = iomt_bind_scale(bind, op->output_state, 0);
  const float hidden_scale = iomt_bind_scale(bind, op->hidden, 0);
  const float gate_scale = std::pow(2, -12);  // Q3.12 for the activations (no layer norm)
  if (input_scale == 0.0f || output_state_scale == 0.0f || hidden_scale == 0.0f) {
    return IOMT_ERR_QUANT;
  }
  for (int gate = 0; gate < 4; ++gate) {
    const float to_gate = iomt_bind_scale(bind, op->weights[gate], 0);
    const float recurrent = iomt_bind_scale(bind, op->weights[4 + gate], 0);
    const float effective_input = to_gate * input_scale / gate_scale;
    const float effective_recurrent = recurrent * output_state_scale / gate_scale;
    int shift = 0;
    tflite::QuantizeMultiplier(effective_input, &op->scale_a[gate], &shift);
    op->scale_b[gate] = shift;
    tflite::QuantizeMultiplier(effective_recurrent, &op->scale_a[4 + gate], &shift);
    op->scale_b[4 + gate] = shift;
  }
  const float effective_hidden = std::pow(2, -15) / hidden_scale * std::pow(2, -15);
  int shift = 0;
  tflite::QuantizeMultiplier(effective_hidden, &op->scale_a[kHidden], &shift);
  op->scale_b[kHidden] = shift;
  return 0;
}

int BindCell(iomt_lstm_op* op, const iomt_bind* bind) {
  const float cell_state_scale = iomt_bind_scale(bind, op->cell_state, 0);
  int cell_scale = 0;
  if (!tflite::CheckedLog2(cell_state_scale, &cell_scale)) return IOMT_ERR_QUANT;
  op->cell_scale = cell_scale;
  op->quantized_cell_clip = 0;
  if (op->cell_clip > 0.0f) {
    op->quantized_cell_clip = static_cast<int16_t>(
        std::min(std::max(op->cell_clip / cell_state_scale, -32768.0f), 32767.0f));
  }
  return 0;
}

// bias + zero point x row sums of the weights (input side) and zero point x row sums
// (recurrent side), as PrecomputeZeroPointTimesWeightWithBias.
void BindEffectiveBiases(iomt_lstm_op* op, const iomt_bind* bind) {
  const int32_t input_zero_point = -iomt_bind_zero_point(bind, op->input);
  const int32_t state_zero_point = -op->output_state_zero_point;
  for (int gate = 0; gate < 4; ++gate) {
    int32_t* input_side = op->effective_bias + gate * op->n_cell;
    int32_t* recurrent_side = op->effective_bias + (4 + gate) * op->n_cell;
    const int32_t* bias = static_cast<const int32_t*>(iomt_bind_constant(bind, op->biases[gate]));
    if (bias == nullptr) {
      memset(input_side, 0, sizeof(int32_t) * op->n_cell);
    } else {
      memcpy(input_side, bias, sizeof(int32_t) * op->n_cell);
    }
    memset(recurrent_side, 0, sizeof(int32_t) * op->n_cell);
    if (input_zero_point != 0) {
      tu::PortableMatrixScalarMultiplyAccumulate(op->weight_data[gate], input_zero_point,
                                                 op->n_cell, op->n_input, input_side);
    }
    if (state_zero_point != 0) {
      tu::PortableMatrixScalarMultiplyAccumulate(op->weight_data[4 + gate], state_zero_point,
                                                 op->n_cell, op->n_output, recurrent_side);
    }
  }
}

// CalculateLstmGateInteger8x8_16 without peephole or layer norm.
void Gate(const iomt_lstm_op* op, int gate, const int8_t* input, const int8_t* output_state,
          int16_t* out) {
  std::fill_n(out, op->n_batch * op->n_cell, 0);
  tu::PortableMatrixBatchVectorMultiplyAccumulate(
      input, op->effective_bias + gate * op->n_cell, op->weight_data[gate], op->scale_a[gate],
      op->scale_b[gate], op->n_batch, op->n_input, op->n_cell, 0, op->scratch_int32, out,
      nullptr);
  tu::PortableMatrixBatchVectorMultiplyAccumulate(
      output_state, op->effective_bias + (4 + gate) * op->n_cell, op->weight_data[4 + gate],
      op->scale_a[4 + gate], op->scale_b[4 + gate], op->n_batch, op->n_output, op->n_cell, 0,
      op->scratch_int32, out, nullptr);
  if (gate == kCellGate) {
    tu::PortableApplyTanh(3, out, op->n_batch, op->n_cell, out);
  } else {
    tu::PortableApplySigmoid(out, op->n_batch, op->n_cell, out);
  }
}

// LstmStepInteger8x8_16: gates, cell update (UpdateLstmCellInteger), output
// (CalculateLstmOutputInteger8x8_16 without projection).
void Step(const iomt_lstm_op* op, const int8_t* input, int8_t* output_state,
          int16_t* cell_state, int8_t* output) {
  int16_t* const* gates = op->gates;
  const int n = op->n_batch, cells = op->n_cell;
  Gate(op, kInputGate, input, output_state, gates[kInputGate]);
  Gate(op, kForgetGate, input, output_state, gates[kForgetGate]);
  Gate(op, kCellGate, input, output_state, gates[kCellGate]);
  int16_t* scratch = gates[kForgetGate];
  tu::PortableCwiseMul(gates[kForgetGate], cell_state, n, cells, 15, cell_state);
  tu::PortableCwiseMul(gates[kInputGate], gates[kCellGate], n, cells, 30 + op->cell_scale,
                       scratch);
  tu::PortableCwiseAdd(cell_state, scratch, n, cells, cell_state);
  if (op->quantized_cell_clip > 0) {
    tu::PortableCwiseClipping(cell_state, n * cells, op->quantized_cell_clip);
  }
  Gate(op, kOutputGate, input, output_state, gates[kOutputGate]);
  int16_t* tanh_cell = gates[kInputGate];
  tu::PortableApplyTanh(15 + op->cell_scale, cell_state, n, cells, tanh_cell);
  tu::PortableCwiseMul(gates[kOutputGate], tanh_cell, op->scale_a[kHidden],
                       op->scale_b[kHidden], n, cells, op->hidden_zero_point, output_state);
  std::copy_n(output_state, n * op->n_output, output);
}

}  // namespace

extern "C" {

int iomt_lstm_bind(iomt_lstm_op* op, const iomt_bind* bind) {
  op->in_data = static_cast<const int8_t*>(iomt_bind_activation(bind, op->input));
  op->out_data = static_cast<int8_t*>(iomt_bind_activation(bind, op->output));
  op->output_state_data = static_cast<int8_t*>(iomt_bind_activation(bind, op->output_state));
  op->cell_state_data = static_cast<int16_t*>(iomt_bind_activation(bind, op->cell_state));
  for (int w = 0; w < 8; ++w) {
    op->weight_data[w] = static_cast<const int8_t*>(iomt_bind_constant(bind, op->weights[w]));
    if (op->weight_data[w] == nullptr) return IOMT_ERR_GRAPH;
  }
  uint8_t* scratch = bind->arena + op->scratch_offset;
  const int32_t cells = op->n_batch * op->n_cell;
  for (int g = 0; g < 4; ++g) op->gates[g] = reinterpret_cast<int16_t*>(scratch) + g * cells;
  op->scratch_int32 = reinterpret_cast<int32_t*>(scratch + 8 * cells);
  op->scratch_int8 = reinterpret_cast<int8_t*>(scratch + 12 * cells);
  op->output_state_zero_point = iomt_bind_zero_point(bind, op->output_state);
  op->hidden_zero_point = iomt_bind_zero_point(bind, op->hidden);
  int status = BindScales(op, bind);
  if (status == 0) status = BindCell(op, bind);
  if (status != 0) return status;
  BindEffectiveBiases(op, bind);
  return 0;
}

void iomt_lstm_eval(const iomt_lstm_op* op) {
  for (int b = 0; b < op->n_batch; ++b) {
    for (int t = 0; t < op->n_time; ++t) {
      const int time_offset = op->time_major ? t * op->n_batch + b : b * op->n_time + t;
      Step(op, op->in_data + time_offset * op->n_input,
           op->output_state_data + b * op->n_output, op->cell_state_data + b * op->n_cell,
           op->out_data + time_offset * op->n_output);
    }
  }
}

}  // extern "C"
