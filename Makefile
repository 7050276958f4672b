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

# llama-cpp-python is compiled here, for one fixed x86-64 instruction set (AVX2, FMA, F16C, BMI2) and not
# for the build machine's (-march=native): a native build on a CPU with AMX runs llama.cpp's AMX kernels,
# whose tile set-up GCC 12 compiles wrongly (the server crashed on its first completion), and every other
# CPU would round differently. The same build on every machine gives the same numbers (docs/BENCHMARKS.md,
# issue 16). pip's wheel cache ignores CMAKE_ARGS, so the wheel is built with --no-cache-dir into a
# folder named after the flags (built once per machine: 8-25 minutes on 2 cores) and checked after install.
LLAMA_CPP_VERSION := 0.3.36
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
LLAMA_MUST_NOT_HAVE ?= AVX512 AMX
else
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
LLAMA_MUST_NOT_HAVE ?=
endif
LLAMA_KEY := $(shell echo '$(LLAMA_CPP_VERSION) $(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)
LLAMA_WHEELS ?= $(HOME)/.cache/clickintent/wheels/llama-cpp-python-$(LLAMA_CPP_VERSION)-$(LLAMA_KEY)

$(VENV)/.llama-installed: Makefile | $(BIN)/python
	@if [ -n "$(LLAMA_MUST_NOT_HAVE)" ] && [ -r /proc/cpuinfo ] && ! grep -qw avx2 /proc/cpuinfo; then \
	  echo "this CPU has no AVX2, which the llama-cpp-python build here needs; set LLAMA_CMAKE_ARGS=-DGGML_NATIVE=ON"; \
	  exit 1; fi
	@if ! ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1; then \
	  echo "building llama-cpp-python $(LLAMA_CPP_VERSION) with $(LLAMA_CMAKE_ARGS) into $(LLAMA_WHEELS)"; \
	  rm -rf $(LLAMA_WHEELS).partial && mkdir -p $(LLAMA_WHEELS).partial && \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel --quiet --no-cache-dir --no-deps --no-binary llama-cpp-python \
	    llama-cpp-python==$(LLAMA_CPP_VERSION) -w $(LLAMA_WHEELS).partial && \
	  mv $(LLAMA_WHEELS).partial $(LLAMA_WHEELS); \
	fi
	$(PIP) install --quiet --no-deps --force-reinstall $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
	$(PIP) install --quiet $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl  # its dependencies
	$(BIN)/python -c "import llama_cpp, sys; info = llama_cpp.llama_print_system_info().decode(); \
	bad = [f for f in '$(LLAMA_MUST_NOT_HAVE)'.split() if f + '_' in info or f + ' =' in info]; \
	print('llama.cpp build:', info.strip()); sys.exit(f'llama-cpp-python was built with {bad}: delete $(LLAMA_WHEELS)' if bad else 0)"
	touch $@

# torch is pinned to the local CPU wheel (torch==2.13.0 in pyproject.toml): an unpinned torch pulls a CUDA build.
# llama-cpp-python goes in first, so pip keeps that build (the requirement ==0.3.36 is already met).
$(VENV)/.demo-installed: pyproject.toml $(VENV)/.llama-installed | $(BIN)/python
	$(PIP) install --quiet -e ".[llm-local,serve]"
	touch $@

$(VENV)/.test-installed: pyproject.toml $(VENV)/.llama-installed | $(BIN)/python
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
