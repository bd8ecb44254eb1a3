# Two entry points for a fresh machine (see README):
#   make simulate   install the workstation extra and run the main job end to end
#   make test       install the dev extra, lint, and run the test suite
# and, for docs/benchmarks.md only:
#   make bench      install the bench extra in its own venv and run every benchmark part
# and, as root on a kernel with binfmt_misc (CI runs it after the tests):
#   make pi-check   the edge install on emulated Raspberry Pi OS userlands (arm64, armhf)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: simulate test lint bench install-workstation install-dev install-bench mosquitto nats-server \
	firmware firmware-toolchain pi-deps pi-check chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install-workstation: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[workstation]"

install-dev: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"

# Flower (compared against, never needed by the toolkit) gets its own venv: it pins typer and
# protobuf below what the toolkit's own environment resolves. amqtt pins typer==0.15.4, on which
# Flower 1.42's CLI cannot even start (typing.Literal options); amqtt's broker, all we use of it,
# runs on the newer typer, so that pin is overridden here (pip will warn about it).
BENCH_VENV ?= .venv-bench
$(BENCH_VENV)/bin/python:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip

install-bench: $(BENCH_VENV)/bin/python
	$(BENCH_VENV)/bin/python -m pip install --quiet -e ".[bench]"
	$(BENCH_VENV)/bin/python -m pip install --quiet "typer>=0.19,<0.21"
	$(BENCH_VENV)/bin/flwr --help >/dev/null

bench: install-bench
	$(BENCH_VENV)/bin/python -m bench all

simulate: install-workstation
	$(BIN)/iomt simulate --task har

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The integration tests start their own Mosquitto on free loopback ports.
mosquitto:
	@command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || { \
	  if [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients; \
	  else sudo apt-get install -y mosquitto mosquitto-clients; fi; }

# The clustered-broker tests and `python -m bench cluster` run three nats-server nodes
# (Debian's package, 2.9: JetStream and an MQTT 3.1.1 listener per node).
nats-server:
	@command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || { \
	  if [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server; \
	  else sudo apt-get install -y nats-server; fi; }

# The live fleet page's test takes a screenshot with headless Chromium.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else sudo apt-get install -y chromium; fi; }

test: mosquitto nats-server firmware chromium lint
	$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$status

# The C firmware (firmware_bridge/firmware): the ARM toolchain and QEMU from apt when missing,
# then, with BUNDLE=bundles/NAME, the qemu-mps2-an386 image for that bundle in
# build/firmware/NAME/ (iomt_firmware.elf, firmware.json with its flash and RAM use). Without
# BUNDLE it compiles the core and the port only (what CI checks before the firmware tests,
# which build their own images).
FIRMWARE_APT := qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib
FIRMWARE_OUT ?= build/firmware
firmware-toolchain:
	@missing=""; for package in $(FIRMWARE_APT); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then echo "installing$$missing"; \
	  if [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else sudo apt-get install -y --no-install-recommends $$missing; fi; fi

firmware: firmware-toolchain install-dev
	$(BIN)/python -m iomt.firmware_image \
	  $(if $(BUNDLE),--bundle $(BUNDLE) --out $(FIRMWARE_OUT)/$(notdir $(abspath $(BUNDLE))),--check)

# Debian bookworm arm64 and armhf root filesystems (cached under
# ${XDG_CACHE_HOME:-~/.cache}/iomt-edge-fl/rootfs), the wheel's edge extra installed in each as
# docs/edge-device.md says, a device in each against this machine's broker: bench/results/pi.json.
pi-deps:
	@command -v debootstrap >/dev/null 2>&1 && [ -e /usr/lib/binfmt.d/qemu-arm.conf ] || { \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap qemu-user-static; }

pi-check: mosquitto pi-deps install-dev
	$(BIN)/python -m bench.pi_check
