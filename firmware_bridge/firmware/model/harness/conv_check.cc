// Proof that iomt::FastConvPerChannel is TensorFlow Lite's reference ConvPerChannel: random
// shapes, strides, dilations, paddings, offsets, multipliers and activation ranges, both
// kernels on the same data, every output byte compared.
//
//   iomt_conv_check [CASES] [SEED]     prints "N cases identical" or the first difference; exit 1
#include <stdio.h>
#include <stdlib.h>

#include <vector>

#include "iomt_fast_conv.h"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/conv.h"

namespace {

uint32_t g_state = 1;

int Random(int low, int high) {  // inclusive, xorshift32
  g_state ^= g_state << 13;
  g_state ^= g_state >> 17;
  g_state ^= g_state << 5;
  return low + static_cast<int>(g_state % static_cast<uint32_t>(high - low + 1));
}

void Fill(std::vector<int8_t>* values) {
  for (int8_t& v : *values) v = static_cast<int8_t>(Random(-128, 127));
}

bool CheckOne(int index) {
  const int in_h = Random(1, 3), in_w = Random(1, 40), depth = Random(1, 20);
  const int out_c = Random(1, 12), f_h = Random(1, in_h), f_w = Random(1, 9);
  tflite::ConvParams p = {};
  p.stride_width = Random(1, 3);
  p.stride_height = Random(1, 2);
  p.dilation_width_factor = Random(1, 5);
  p.dilation_height_factor = Random(1, 2);
  p.padding_values.width = Random(0, 8);
  p.padding_values.height = Random(0, 1);
  p.input_offset = Random(-127, 128);
  p.output_offset = Random(-128, 127);
  p.quantized_activation_min = Random(-128, 0);
  p.quantized_activation_max = Random(0, 127);
  const int out_h = Random(1, in_h + 1), out_w = Random(1, in_w + 2);
  std::vector<int8_t> input(in_h * in_w * depth), filter(out_c * f_h * f_w * depth);
  std::vector<int32_t> bias(out_c), multiplier(out_c), shift(out_c);
  Fill(&input);
  Fill(&filter);
  for (int c = 0; c < out_c; ++c) {
    bias[c] = Random(-40000, 40000);
    multiplier[c] = Random(1 << 30, 0x7fffffff);
    shift[c] = Random(-12, 1);
  }
  const int32_t in_dims[4] = {1, in_h, in_w, depth}, f_dims[4] = {out_c, f_h, f_w, depth};
  const int32_t out_dims[4] = {1, out_h, out_w, out_c}, b_dims[1] = {out_c};
  const tflite::RuntimeShape in_shape(4, in_dims), f_shape(4, f_dims), out_shape(4, out_dims);
  std::vector<int8_t> fast(out_h * out_w * out_c), reference(fast.size());
  iomt::FastConvPerChannel(p, multiplier.data(), shift.data(), in_shape, input.data(), f_shape,
                           filter.data(), bias.data(), out_shape, fast.data());
  tflite::reference_integer_ops::ConvPerChannel(
      p, multiplier.data(), shift.data(), in_shape, input.data(), f_shape, filter.data(),
      tflite::RuntimeShape(1, b_dims), bias.data(), out_shape, reference.data());
  for (size_t k = 0; k < fast.size(); ++k) {
    if (fast[k] != reference[k]) {
      printf("case %d differs at output %zu: fast %d, reference %d\n", index, k, fast[k],
             reference[k]);
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? atoi(argv[1]) : 2000;
  g_state = argc > 2 ? static_cast<uint32_t>(atoi(argv[2])) | 1u : 1u;
  for (int c = 0; c < cases; ++c) {
    if (!CheckOne(c)) return 1;
  }
  printf("%d cases identical\n", cases);
  return 0;
}
