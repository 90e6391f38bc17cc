# artalk: every target bootstraps what it needs (virtual environment, system packages).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
ARTALK := $(VENV)/bin/artalk
# The CPU build of torch (a plain "torch" pulls a multi-GB CUDA build); override for CUDA.
TORCH_SPEC ?= torch==2.13.0
OUT ?= demo_out

.PHONY: help venv sysdeps test test-tools demo app bench clean

help:
	@echo "make demo   - run the whole chain offline on the bundled speech sample (-> $(OUT)/)"
	@echo "make test   - run the test suite"
	@echo "make app    - serve the web page on http://127.0.0.1:8960 (Gradio; Ctrl+C to stop)"
	@echo "make bench  - speed benchmark"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)" || $(PY) -m pip install -q torch
	$(PY) -m pip install -q -e '.[dev,app]'
	touch $@

venv: $(VENV)/.installed

sysdeps:
	@bash scripts/sysdeps.sh

test: venv test-tools
	@bash scripts/sysdeps.sh --test
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -q

# Node tools the tests use when present (the Khronos glTF validator and three.js, tests/tools/package.json),
# installed before the tests so they never touch the network; without npm those tests skip.
test-tools:
	@if command -v npm >/dev/null 2>&1; then \
	  [ -d tests/tools/node_modules/gltf-validator ] && [ -d tests/tools/node_modules/three ] || npm install --prefix tests/tools --no-audit --no-fund --silent \
	  || echo "artalk: could not install the glTF test tools (npm); their tests will skip" >&2; \
	else echo "artalk: npm not found: the glTF validator and three.js tests will skip" >&2; fi

# The whole chain offline, no downloads: tts -> generate (energy engine) -> render (stand-in
# head unless assets/FLAME_with_eye.pt exists) -> mux. Ends in $(OUT)/demo.mp4.
DEMO_TEXT ?= Hello! This is artalk. It turns speech into a talking head, one step at a time.
demo: venv sysdeps
	mkdir -p $(OUT)
	$(ARTALK) tts "$(DEMO_TEXT)" -o $(OUT)/demo.wav || cp assets/speech_sample.wav $(OUT)/demo.wav
	$(ARTALK) generate $(OUT)/demo.wav --engine energy -o $(OUT)/demo.motion.safetensors
	$(ARTALK) render $(OUT)/demo.motion.safetensors --verts $(OUT)/demo.h5 -o $(OUT)/demo_silent.mp4
	$(ARTALK) mux $(OUT)/demo_silent.mp4 $(OUT)/demo.wav -o $(OUT)/demo.mp4
	$(ARTALK) frame $(OUT)/demo.mp4 --index 30 -o $(OUT)/demo_frame.png
	$(ARTALK) info $(OUT)/demo.mp4
	@echo "demo: $(OUT)/demo.mp4 (frame: $(OUT)/demo_frame.png)"

app: venv sysdeps
	$(ARTALK) app

bench: venv
	$(PY) scripts/bench.py
	$(PY) scripts/bench_batch.py
	$(PY) scripts/bench_live.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
