# Make fragment: the model runner's sources, include paths, the fetched kernels and the
# generated plan. A build that includes it sets MODEL (a .tflite), BUILD and PYTHON.
IOMT_MODEL_DIR := $(dir $(lastword $(MAKEFILE_LIST)))
IOMT_REPO_ROOT := $(abspath $(IOMT_MODEL_DIR)../../..)
IOMT_KERNELS := $(BUILD)/third_party
IOMT_KERNELS_STAMP := $(IOMT_KERNELS)/NOTICE
IOMT_MODEL_PLAN := $(BUILD)/plan/iomt_model_plan.c

IOMT_MODEL_C_SOURCES := $(IOMT_MODEL_DIR)iomt_tflite_reader.c $(IOMT_MODEL_DIR)iomt_runner.c
IOMT_MODEL_CXX_SOURCES := $(IOMT_MODEL_DIR)iomt_ops.cc $(IOMT_MODEL_DIR)iomt_lstm.cc \
  $(IOMT_MODEL_DIR)iomt_fast_conv.cc
# Fetched third-party sources: compiled without the project's -Werror (their warnings are not
# ours to fix), like every header under -isystem below.
IOMT_KERNEL_CXX_SOURCES := \
  $(IOMT_KERNELS)/tensorflow/tensorflow/lite/kernels/internal/runtime_shape.cc \
  $(IOMT_KERNELS)/tensorflow/tensorflow/lite/kernels/internal/common.cc \
  $(IOMT_KERNELS)/tensorflow/tensorflow/lite/kernels/internal/quantization_util.cc \
  $(IOMT_KERNELS)/tensorflow/tensorflow/lite/kernels/internal/reference/portable_tensor_utils.cc
# The fetched sources are third-party: their warnings are not ours (-isystem).
IOMT_MODEL_INCLUDES := -I$(IOMT_MODEL_DIR) -I$(IOMT_MODEL_DIR)../core -isystem $(IOMT_MODEL_DIR)shim \
  -isystem $(IOMT_KERNELS)/tensorflow -isystem $(IOMT_KERNELS)/gemmlowp

$(IOMT_KERNELS_STAMP):
	sh $(IOMT_MODEL_DIR)fetch_reference_kernels.sh $(IOMT_KERNELS)

$(IOMT_MODEL_PLAN): $(MODEL)
	cd $(IOMT_REPO_ROOT) && $(PYTHON) -m convert.firmware_plan $(abspath $(MODEL)) --out $(abspath $(dir $@))

$(IOMT_KERNELS)/tensorflow/%: $(IOMT_KERNELS_STAMP)
	@test -f $@ || { echo "fetched kernels lack $@" >&2; exit 1; }
