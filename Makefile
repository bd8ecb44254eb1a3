# Two entry points for a fresh machine (see README):
#   make simulate   install the workstation extra and run the main job end to end
#   make test       install the dev extra, lint, and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: simulate test lint install-workstation install-dev mosquitto

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install-workstation: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[workstation]"

install-dev: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"

simulate: install-workstation
	$(BIN)/iomt simulate --task har

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The integration tests start their own Mosquitto on free loopback ports.
mosquitto:
	@command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || { \
	  if [ "$$(id -u)" -eq 0 ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients; \
	  else sudo apt-get install -y mosquitto mosquitto-clients; fi; }

test: mosquitto lint
	$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$status
