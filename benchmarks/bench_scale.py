"""Ingest + sessionize a large generated file and record the peak memory (RSS) of the process.

Generates a raw Parquet file of --events events in 5M-event chunks (bounded memory), then runs
`ingest` and `sessionize` in a child process whose peak RSS is read from the OS afterwards
(getrusage of children), so generation does not count. DuckDB runs under its default 2 GB memory limit
and spills to disk beyond it.

    python -m benchmarks.bench_scale --events 50000000 --dir /tmp/scale
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.synthetic_events import write_synthetic

CHILD = """
import json, sys, time
from clickintent.ingest import ingest
from clickintent.sessionize import sessionize
src, out = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
report = ingest(src, out)
t1 = time.perf_counter()
sessions = sessionize(out + "/events.parquet", out + "/sessions.parquet")
t2 = time.perf_counter()
print(json.dumps({"rows_in": report.rows_in, "rows_out": report.rows_out, "sessions": sessions.sessions,
                  "ingest_s": round(t1 - t0, 1), "sessionize_s": round(t2 - t1, 1)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/clickintent-scale"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    raw = args.dir / f"raw-{args.events}.parquet"
    if not raw.exists():
        t = time.perf_counter()
        write_synthetic(raw, args.events, raw=True)
        print(f"generated {args.events:,} events in {time.perf_counter() - t:.0f} s -> {raw}")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(raw), str(args.dir / "out")], capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(done.stderr)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    result |= {"events": args.events, "wall_s": round(wall, 1), "peak_rss_gb": round(peak_gb, 2)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
