"""Ingest a GA4 BigQuery export of ~1M events (NDJSON, as `bq extract` writes it) with --preset ga4.

Writes the export first (not timed): the GA4 sample's journeys (clickintent.ingest.presets.samples) for
enough visitors, full-size rows (every top-level field GA4 exports, ~1.7 kB a row), shuffled in blocks.
Then times `ingest(..., IngestOptions(preset="ga4"))` end to end (read, map, validate, redact, de-duplicate,
sort, write) --repeat times in fresh child processes and reports the median events per second, with the
machine's load beside it. The goal (issue 20): at least 200,000 events/s on 2 cores.

    python -m benchmarks.bench_presets --events 1000000 --dir /tmp/bench-presets
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

from clickintent.ingest.presets import samples

# CPU seconds (all threads) beside wall seconds: on a shared machine the wall time says how busy it was,
# the CPU time what the work costs; CPU / 2 is the wall time two free cores could at best reach.
CHILD = """
import json, resource, sys, time
from clickintent.ingest import IngestOptions, ingest
t0 = time.perf_counter()
r = ingest(sys.argv[1], sys.argv[2], IngestOptions(preset="ga4", threads=int(sys.argv[3])))
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"rows_in": r.rows_in, "rows_out": r.rows_out, "seconds": round(time.perf_counter() - t0, 2),
                  "cpu_seconds": round(u.ru_utime + u.ru_stime, 2)}))
"""


def write_export(path: Path, events: int, seed: int = 0) -> int:
    """A GA4 NDJSON export of about `events` events; returns the number written."""
    written, first, rng = 0, 0, random.Random(seed)
    with path.open("w") as f:
        while written < events:
            hits = samples.journeys(visitors=2_000, seed=seed + first, first=first)[: events - written]
            lines = [samples.bq_json(row) for row in samples.ga4_rows(hits)]
            rng.shuffle(lines)
            f.write("\n".join(lines) + "\n")
            written, first = written + len(lines), first + 2_000
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench-presets"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads (cores) ingest may use")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    src = args.dir / "events_ga4.json"
    if not src.exists() or src.stat().st_size == 0:
        write_export(src, args.events)
    runs = []
    for _ in range(args.repeat):
        load = os.getloadavg()[0]
        out = subprocess.run([sys.executable, "-c", CHILD, str(src), str(args.dir / "out"), str(args.threads)],
                             check=True, capture_output=True, text=True).stdout  # fmt: skip
        run = json.loads(out.strip().splitlines()[-1]) | {"load_1min": round(load, 2)}
        run["events_per_s"] = round(run["rows_in"] / run["seconds"])
        run["cpu_us_per_event"] = round(run["cpu_seconds"] / run["rows_in"] * 1e6, 1)
        runs.append(run)
        print(json.dumps(run))
    size = src.stat().st_size
    median = statistics.median(r["events_per_s"] for r in runs)
    cpu = statistics.median(r["cpu_us_per_event"] for r in runs)
    print(json.dumps({"file_mb": round(size / 1e6), "bytes_per_event": round(size / runs[0]["rows_in"]),
                      "cores": os.cpu_count(), "median_events_per_s": median, "median_cpu_us_per_event": cpu,
                      "two_free_cores_at_best_events_per_s": round(2e6 / cpu), "goal": 200_000,
                      "meets_goal": median >= 200_000}))  # fmt: skip


if __name__ == "__main__":
    main()
