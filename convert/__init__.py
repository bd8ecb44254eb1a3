"""Workstation side of deployment: a training run becomes a signed, verified int8 bundle.

`pipeline.convert_run` ties the steps together: `quantize` (full-int8 and float32 TFLite),
`op_check` (no float op left), `split` (int8 backbone + float head), `tflm_checks` (run in
tflite-micro, measure the arena), `parity` (float vs int8 vs TFLM vs backbone + head),
`c_array_export`, `manifest`; `bundle_writer` signs and writes. Nothing is imported here.
"""
