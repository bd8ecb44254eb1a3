#pragma once
namespace tflite {
template <unsigned N> struct MicroMutableOpResolver {
  void AddConv2D() {} void AddDepthwiseConv2D() {} void AddFullyConnected() {}
  void AddUnidirectionalSequenceLSTM() {} void AddReshape() {} void AddMean() {}
  void AddSoftmax() {} void AddRelu() {} void AddAdd() {} void AddMul() {}
  void AddExpandDims() {} void AddConcatenation() {} void AddQuantize() {} void AddDequantize() {}
};
}
