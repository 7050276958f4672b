# Two commands for a fresh machine: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test lint typecheck bench clean help

help:  ## show the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch is pinned to the local CPU wheel (torch==2.13.0 in pyproject.toml): an unpinned torch pulls a CUDA build.
$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[llm-local,serve]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[llm-local,spark,serve,dev]"
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed  ## create .venv, install, run the whole pipeline on simulated data
	$(BIN)/clickintent demo --out out

test: $(VENV)/.test-installed  ## create .venv if needed, install with test extras, run the whole suite
	$(BIN)/python -m pytest

lint: $(VENV)/.test-installed  ## ruff and mypy
	$(BIN)/ruff check clickintent tests benchmarks
	$(BIN)/mypy clickintent

clean:  ## remove the virtual environment and outputs
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
