#pragma once
#include <stddef.h>
#include <stdint.h>
#include "tensorflow/lite/schema/schema_generated.h"
enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 };
struct TfLiteIntArray { int size; int data[4]; };
struct TfLiteTensor { TfLiteIntArray *dims; size_t bytes; union { int8_t *int8; float *f; } data; };
namespace tflite {
struct MicroInterpreter {
  template <class R> MicroInterpreter(const Model *, R &, uint8_t *, size_t) {}
  TfLiteStatus AllocateTensors() { return kTfLiteOk; }
  TfLiteStatus Invoke() { return kTfLiteOk; }
  TfLiteStatus Reset() { return kTfLiteOk; }
  TfLiteTensor *input(size_t) { return nullptr; }
  TfLiteTensor *output(size_t) { return nullptr; }
};
}
