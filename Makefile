# artalk: every target bootstraps what it needs (virtual environment, system packages).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
ARTALK := $(VENV)/bin/artalk
# The CPU build of torch (a plain "torch" pulls a multi-GB CUDA build); override for CUDA.
TORCH_SPEC ?= torch==2.13.0
OUT ?= demo_out

.PHONY: help venv sysdeps test demo bench clean

help:
	@echo "make demo   - run the whole chain offline on the bundled speech sample (-> $(OUT)/)"
	@echo "make test   - run the test suite"
	@echo "make bench  - speed benchmark"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)" || $(PY) -m pip install -q torch
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

sysdeps:
	@bash scripts/sysdeps.sh

test: venv sysdeps
	$(PY) -m pytest -q

demo: venv sysdeps
	mkdir -p $(OUT)
	$(ARTALK) generate assets/speech_sample.wav --engine energy -o $(OUT)/speech_sample.motion.safetensors
	$(ARTALK) info $(OUT)/speech_sample.motion.safetensors

bench: venv
	$(PY) scripts/bench.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
