// Faster int8 convolution, identical to the reference: the same int32 sum of
// filter * (input + input_offset) over the same taps (integer addition in any order gives the
// same int32), then the same MultiplyByQuantizedMultiplier, offset and clamp. What changes is
// the work around it: the valid taps of an output pixel are found once for all its channels,
// offsets are pointer steps instead of four-dimensional index arithmetic, the loop over input
// channels is unrolled.
#include "iomt_fast_conv.h"

#include <algorithm>

#include "tensorflow/lite/kernels/internal/common.h"

namespace iomt {
namespace {

struct Tap {
  const int8_t* input;  // the input pixel's channels
  int32_t filter;       // offset of the tap in one output channel's filter
};

int32_t Dot(const int8_t* input, const int8_t* filter, int channels, int32_t input_offset) {
  int32_t acc = 0;
  int c = 0;
  for (; c + 4 <= channels; c += 4) {
    acc += filter[c] * (input[c] + input_offset);
    acc += filter[c + 1] * (input[c + 1] + input_offset);
    acc += filter[c + 2] * (input[c + 2] + input_offset);
    acc += filter[c + 3] * (input[c + 3] + input_offset);
  }
  for (; c < channels; ++c) acc += filter[c] * (input[c] + input_offset);
  return acc;
}

}  // namespace

bool FastConvPerChannel(const tflite::ConvParams& params, const int32_t* output_multiplier,
                        const int32_t* output_shift, const tflite::RuntimeShape& input_shape,
                        const int8_t* input_data, const tflite::RuntimeShape& filter_shape,
                        const int8_t* filter_data, const int32_t* bias_data,
                        const tflite::RuntimeShape& output_shape, int8_t* output_data) {
  const int batches = input_shape.Dims(0), in_h = input_shape.Dims(1);
  const int in_w = input_shape.Dims(2), depth = input_shape.Dims(3);
  const int out_c = filter_shape.Dims(0), f_h = filter_shape.Dims(1);
  const int f_w = filter_shape.Dims(2);
  const int out_h = output_shape.Dims(1), out_w = output_shape.Dims(2);
  if (filter_shape.Dims(3) != depth || f_h * f_w > kMaxTaps) return false;
  const int filter_size = f_h * f_w * depth;
  Tap taps[kMaxTaps];
  for (int b = 0; b < batches; ++b) {
    for (int oy = 0; oy < out_h; ++oy) {
      for (int ox = 0; ox < out_w; ++ox) {
        const int y0 = oy * params.stride_height - params.padding_values.height;
        const int x0 = ox * params.stride_width - params.padding_values.width;
        int count = 0;
        for (int fy = 0; fy < f_h; ++fy) {
          const int y = y0 + params.dilation_height_factor * fy;
          if (y < 0 || y >= in_h) continue;
          for (int fx = 0; fx < f_w; ++fx) {
            const int x = x0 + params.dilation_width_factor * fx;
            if (x < 0 || x >= in_w) continue;
            taps[count].input = input_data + ((b * in_h + y) * in_w + x) * depth;
            taps[count].filter = (fy * f_w + fx) * depth;
            ++count;
          }
        }
        int8_t* out = output_data + ((b * out_h + oy) * out_w + ox) * out_c;
        for (int oc = 0; oc < out_c; ++oc) {
          const int8_t* filter = filter_data + oc * filter_size;
          int32_t acc = 0;
          for (int t = 0; t < count; ++t) {
            acc += Dot(taps[t].input, filter + taps[t].filter, depth, params.input_offset);
          }
          if (bias_data != nullptr) acc += bias_data[oc];
          acc = tflite::MultiplyByQuantizedMultiplier(acc, output_multiplier[oc],
                                                      output_shift[oc]);
          acc += params.output_offset;
          acc = std::max(acc, params.quantized_activation_min);
          acc = std::min(acc, params.quantized_activation_max);
          out[oc] = static_cast<int8_t>(acc);
        }
      }
    }
  }
  return true;
}

}  // namespace iomt
