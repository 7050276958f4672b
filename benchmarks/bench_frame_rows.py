"""The service's featurizing step (`Featurizer.frame_rows` on one cleaned 20-event session), timed side by
side for two or more source trees (issue 22: the featurizer was split into fields/vocab/batches/features, and
behaviour, speed included, must not change).

Each tree runs in its own process (PYTHONPATH=TREE), one thread, the same toy bundle and session; rounds
alternate between the trees so that a shared machine's load falls on all of them alike. Reported: per tree,
the median over rounds of each round's median CPU time per call (`time.thread_time`, which leaves out the
time other processes held the core) and wall time, and each tree's ratio to the first.

    git archive 6be8111 | tar x -C /tmp/before    # the tree before the split
    python -m benchmarks.bench_frame_rows --trees /tmp/before . --rounds 7 --calls 2000
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
from collections import Counter
from pathlib import Path
from typing import Any


def _measure(bundle: Path, calls: int) -> dict[str, float]:
    """In this process: median CPU and wall ms per `frame_rows` call on the bench_serve request."""
    import torch
    from bench_serve import session_events  # run as a script: this folder is on sys.path  # type: ignore

    from clickintent.serve.clean import clean_session
    from clickintent.serve.model import ServingModel
    from clickintent.serve.schemas import IntentRequest

    torch.set_num_threads(1)
    model = ServingModel.load(bundle, engine="torch", threads=1)
    rows, _ = clean_session(IntentRequest.model_validate({"events": session_events(20)}).events, Counter())
    for _ in range(200):
        model.featurizer.frame_rows([rows])
    cpu, wall = [], []
    for _ in range(calls):
        t, c = time.perf_counter(), time.thread_time()
        model.featurizer.frame_rows([rows])
        cpu.append((time.thread_time() - c) * 1e3)
        wall.append((time.perf_counter() - t) * 1e3)
    return {"cpu_ms": statistics.median(cpu), "wall_ms": statistics.median(wall)}


def _round(tree: Path, bundle: Path, calls: int) -> dict[str, float]:
    """One round in a new process with `tree`'s clickintent (this script run by path, with --measure)."""
    env = os.environ | {"PYTHONPATH": str(tree.resolve()), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--measure", str(bundle), str(calls)],
                         env=env, capture_output=True, text=True, check=True, cwd=tree)  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:  # one round, in a child process (see _round)
        print(json.dumps(_measure(Path(sys.argv[2]), int(sys.argv[3]))))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trees", type=Path, nargs="+", required=True, help="source trees (the first is the reference)")
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds per tree")
    ap.add_argument("--calls", type=int, default=2000, help="timed calls per round")
    ap.add_argument("--bundle", type=Path, default=None, help="a bundle (default: a toy one, built by the first tree)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-frame-rows-") as tmp:
        bundle = args.bundle
        if bundle is None:
            bundle = Path(tmp) / "toy"
            env = os.environ | {"PYTHONPATH": str(args.trees[0].resolve()), "HF_HUB_OFFLINE": "1"}
            subprocess.run([sys.executable, "-m", "clickintent.serve.toy", str(bundle), "--size", "default"],
                           env=env, check=True, capture_output=True, cwd=args.trees[0])  # fmt: skip
        runs: dict[str, list[dict[str, float]]] = {str(t): [] for t in args.trees}
        for _ in range(args.rounds):
            for tree in args.trees:
                runs[str(tree)].append(_round(tree, bundle, args.calls))
    load = os.getloadavg()
    ref = statistics.median(r["cpu_ms"] for r in runs[str(args.trees[0])])
    report: dict[str, Any] = {"calls": args.calls, "rounds": args.rounds, "load_after": [round(x, 2) for x in load]}
    for tree, rs in runs.items():
        cpu = statistics.median(r["cpu_ms"] for r in rs)
        wall = statistics.median(r["wall_ms"] for r in rs)
        report[tree] = {"cpu_ms": round(cpu, 4), "wall_ms": round(wall, 4), "cpu_ratio": round(cpu / ref, 3),
                        "rounds_cpu_ms": [round(r["cpu_ms"], 4) for r in rs]}  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
