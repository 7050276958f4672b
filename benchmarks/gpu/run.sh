#!/usr/bin/env bash
# GPU vs CPU benchmark of the session encoder (issue 8), for one run on a lent GPU machine.
#
# From the repository root, with the wheels of the packages that machine lacks in .gpu/wheels
# (duckdb; see docs/BENCHMARKS.md, "Issue 8"):
#     bash benchmarks/gpu/run.sh            # writes $OUT/bench_gpu.json, $OUT/bench_gpu.txt, $OUT/run.log
# Locally, on CPU, tiny (CUDA is reported as unavailable):
#     PY=.venv/bin/python OUT=/tmp/gpu-out ARGS="--visitors 300 --days 7 --budget-s 120" bash benchmarks/gpu/run.sh
#
# Bounded: the benchmark keeps to --budget-s (default 250 s, phases that do not fit are skipped), and a
# hard stop at LIMIT_S (default 300 s) interrupts it, still writing what it measured; with the install,
# the whole script stays under 6 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY="${PY:-python3}"
OUT="${OUT:-$PWD/out/gpu}"
DEPS="${DEPS:-/tmp/clickintent-deps}"
LIMIT_S="${LIMIT_S:-300}"
ARGS="${ARGS:-}"
mkdir -p "$OUT"

# Install the carried wheels only when a dependency is missing (a local venv already has them, and
# its Python may not match the wheels' cp312 tags).
if ! "$PY" -c "import duckdb" 2>/dev/null; then
    "$PY" -m pip install -q --no-deps --no-index --no-compile --no-cache-dir --target "$DEPS" .gpu/wheels/*.whl
fi
export PYTHONPATH="$DEPS:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

"$PY" -c "import clickintent, duckdb, torch; print('clickintent ready; torch', torch.__version__, \
'cuda', torch.cuda.is_available())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"

# SIGINT first so the benchmark writes its results; SIGKILL 20 s later if it still runs.
set +e
# shellcheck disable=SC2086  # ARGS is a list of options
timeout --signal=INT --kill-after=20 "$LIMIT_S" "$PY" -m benchmarks.bench_gpu --out "$OUT" $ARGS 2>&1 | tee "$OUT/run.log"
rc=${PIPESTATUS[0]}
set -e
echo "bench_gpu exit code $rc; results in $OUT"
exit "$rc"
