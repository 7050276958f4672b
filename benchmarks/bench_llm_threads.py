"""Seconds per label with the local Gemma backend on 1 vs 2 llama.cpp threads, with and without other load.

The requests are `bench_llm_label.py`'s (what `clickintent taxonomy label` sends: 12 labels + Other, one
example visit per label, then each visit). For each `--busy N`, N busy-loop processes (pure Python, one core
each) run while both backends, loaded side by side in this process, answer the same requests in turn (the
order alternates per request, so both see the same load). Printed per N: the shared prefix's first
evaluation on each, the median seconds per label, the ratio, and whether the answers are the same (top
choice, and the largest difference of any choice's score).

    python -m benchmarks.bench_llm_threads --sessions 20 --busy 0 1 2 --out /tmp/bench-llm-threads.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_llm_label import build_requests
from benchmarks.bench_taxonomy import emit

THREADS = (1, 2)


def measure(calibration: Any, requests: list[Any], busy: int) -> dict[str, Any]:
    from clickintent.llm.local import LocalBackend

    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        backends = {t: LocalBackend(n_threads=t, progress=False) for t in THREADS}
        prefix = {}
        for t, b in backends.items():
            t0 = time.perf_counter()
            b.complete(calibration)
            prefix[t] = round(time.perf_counter() - t0, 2)
        secs: dict[int, list[float]] = {t: [] for t in THREADS}
        answers: dict[int, list[Any]] = {t: [] for t in THREADS}
        for i, request in enumerate(requests):
            for t in THREADS if i % 2 == 0 else THREADS[::-1]:
                t0 = time.perf_counter()
                answers[t].append(backends[t].complete(request))
                secs[t].append(time.perf_counter() - t0)
        load = os.getloadavg()[0]
    finally:
        for p in burners:
            p.kill()
            p.wait()
    one, two = answers[1], answers[2]
    return {
        "busy_processes": busy,
        "load_1min_at_end": round(load, 2),
        "prefix_seconds": {str(t): s for t, s in prefix.items()},
        "median_seconds_per_label": {str(t): round(statistics.median(s), 3) for t, s in secs.items()},
        "speedup_2_over_1": round(statistics.median(secs[1]) / statistics.median(secs[2]), 2),
        "same_top_choice": f"{sum(a.text == b.text for a, b in zip(one, two, strict=True))}/{len(requests)}",
        "max_score_difference": max(
            abs(a.choice_logprobs[k] - b.choice_logprobs[k])
            for a, b in zip(one, two, strict=True)
            for k in a.choice_logprobs
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=20, help="label requests timed per backend and load")
    ap.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2], help="busy-loop processes beside them")
    ap.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-llm-threads-") as tmp:
        calibration, requests, info = build_requests(Path(tmp), 300, 7, 0, 12, args.sessions)
    results: dict[str, Any] = {"world": info, "cpus": os.cpu_count(), "runs": []}
    for busy in args.busy:
        run = measure(calibration, requests, busy)
        results["runs"].append(run)
        print(json.dumps(run), file=sys.stderr)
    emit(results, args.out)


if __name__ == "__main__":
    main()
