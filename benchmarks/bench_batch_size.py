"""Sessions per model call on CPU: per-session cost of `Labeller.labels_batch` (featurize + encoder +
classifier) at several batch sizes, on real session lengths (not the fixed 20 events of bench_embed).

Sessions are sorted by length before batching (`Embedder.embed_frame`), so small batches pad little, while
one batch of 512 spans a wide range of lengths and attention pays for the longest one squared. Each batch
size labels the same --sessions sessions --repeats times (median reported), in turn, so they share the
machine's conditions; ratios are against the fastest.

    make demo   # or any bundle with a classifier and a sessions file
    python -m benchmarks.bench_batch_size --bundle out/bundle --sessions out/data/visits.parquet
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from clickintent.distill.label import Labeller


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=Path("out/bundle"), help="bundle with encoder + classifier")
    ap.add_argument("--sessions", type=Path, default=Path("out/data/visits.parquet"), help="sessions.parquet")
    ap.add_argument("--n", type=int, default=2000, help="sessions labelled per run (the first N)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256, 512], help="batch sizes")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per size (median)")
    args = ap.parse_args()
    labeller = Labeller.from_bundle(args.bundle, device="cpu")
    sessions = pq.read_table(args.sessions).slice(0, args.n)
    lengths = np.array([len(e) for e in sessions.column("events").to_pylist()])
    result: dict = {
        "sessions": sessions.num_rows,
        "events_per_session": {"mean": round(float(lengths.mean()), 2), "p50": float(np.median(lengths)),
                               "p99": float(np.quantile(lengths, 0.99)), "max": int(lengths.max())},
        "load_before": os.getloadavg()[0],
        "us_per_session": {},
    }  # fmt: skip
    for threads in args.threads:
        torch.set_num_threads(threads)
        times: dict[int, list[float]] = {b: [] for b in args.sizes}
        labeller.labels_batch(sessions.slice(0, 64))  # warm-up
        for _ in range(args.repeats):
            for b in args.sizes:  # interleaved: every size sees the same load
                labeller.embedder.batch_size = b
                t0 = time.perf_counter()
                labeller.labels_batch(sessions)
                times[b].append((time.perf_counter() - t0) / sessions.num_rows * 1e6)
        med = {b: statistics.median(v) for b, v in times.items()}
        best = min(med.values())
        result["us_per_session"][f"{threads}thr"] = {
            str(b): {"median": round(med[b], 1), "runs": [round(x, 1) for x in v], "vs_best": round(med[b] / best, 2)}
            for b, v in times.items()
        }
    result["load_after"] = os.getloadavg()[0]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
