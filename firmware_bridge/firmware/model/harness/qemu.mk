# The Cortex-M4 bench image (harness/qemu_bench.c) on the QEMU mps2-an386 port's startup,
# semihosting and nRF52840-budget linker script: `make qemu MODEL=m.tflite BUILD=dir`.
CROSS ?= arm-none-eabi-
QEMU_PORT := $(abspath $(IOMT_MODEL_DIR)../ports/qemu_mps2_an386)
QEMU_OBJ := $(BUILD)/qemu
ARM_ARCH := -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
ARM_COMMON := $(ARM_ARCH) -O2 -ffunction-sections -fdata-sections -ffp-contract=off
ARM_CFLAGS := -std=c99 $(ARM_COMMON) -Wall -Wextra -Werror
ARM_CXXFLAGS := -std=c++17 $(ARM_COMMON) -fno-exceptions -fno-rtti -fno-threadsafe-statics
ARM_INCLUDES := $(IOMT_MODEL_INCLUDES) -I$(IOMT_MODEL_DIR)../core -I$(QEMU_PORT)
ARM_LDFLAGS := $(ARM_ARCH) -T$(QEMU_PORT)/mps2_an386.ld -Wl,--gc-sections \
  -Wl,--defsym=IOMT_PARTITION_SIZE=0 --specs=nano.specs --specs=nosys.specs

qemu: $(BUILD)/iomt_model_bench.elf

$(BUILD)/iomt_model_bench.elf: $(IOMT_MODEL_C_SOURCES) $(IOMT_MODEL_CXX_SOURCES) $(IOMT_KERNEL_CXX_SOURCES) $(IOMT_MODEL_DIR)harness/qemu_bench.c $(IOMT_MODEL_PLAN) $(IOMT_KERNELS_STAMP) $(MODEL)
	mkdir -p $(QEMU_OBJ)
	for src in $(IOMT_MODEL_C_SOURCES) $(IOMT_MODEL_PLAN) $(QEMU_PORT)/startup.c $(QEMU_PORT)/semihosting.c; do \
	  $(CROSS)gcc $(ARM_CFLAGS) $(ARM_INCLUDES) -c $$src -o $(QEMU_OBJ)/$$(basename $$src).o || exit 1; done
	$(CROSS)gcc $(ARM_CFLAGS) $(ARM_INCLUDES) -DIOMT_BENCH_MODEL=$(abspath $(MODEL)) \
	  -c $(IOMT_MODEL_DIR)harness/qemu_bench.c -o $(QEMU_OBJ)/qemu_bench.c.o
	for src in $(IOMT_MODEL_CXX_SOURCES); do \
	  $(CROSS)g++ $(ARM_CXXFLAGS) -Wall -Wextra -Werror $(ARM_INCLUDES) -c $$src -o $(QEMU_OBJ)/$$(basename $$src).o || exit 1; done
	for src in $(IOMT_KERNEL_CXX_SOURCES); do \
	  $(CROSS)g++ $(ARM_CXXFLAGS) -w $(ARM_INCLUDES) -c $$src -o $(QEMU_OBJ)/$$(basename $$src).o || exit 1; done
	$(CROSS)g++ $(ARM_LDFLAGS) $(QEMU_OBJ)/*.o -lm -o $@
