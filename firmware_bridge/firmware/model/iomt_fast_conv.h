// A faster int8 per-channel convolution with exactly the arithmetic of TensorFlow Lite's
// reference_integer_ops::ConvPerChannel (harness/conv_check.cc proves it on random cases).
#ifndef IOMT_FAST_CONV_H_
#define IOMT_FAST_CONV_H_

#include <stdint.h>

#include "tensorflow/lite/kernels/internal/types.h"

namespace iomt {

// Same signature and result as tflite::reference_integer_ops::ConvPerChannel. Returns false
// (and writes nothing) for shapes it does not handle: grouped convolution or more than
// kMaxTaps filter taps; the caller then runs the reference kernel.
constexpr int kMaxTaps = 64;

bool FastConvPerChannel(const tflite::ConvParams& params, const int32_t* output_multiplier,
                        const int32_t* output_shift, const tflite::RuntimeShape& input_shape,
                        const int8_t* input_data, const tflite::RuntimeShape& filter_shape,
                        const int8_t* filter_data, const int32_t* bias_data,
                        const tflite::RuntimeShape& output_shape, int8_t* output_data);

}  // namespace iomt

#endif  // IOMT_FAST_CONV_H_
