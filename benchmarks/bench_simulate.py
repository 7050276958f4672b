"""Benchmark `simulate`: seconds and events per second for a world of about one million events.

Runs the whole simulator (people, journeys, app, truth, Parquet writing) a few times into a temporary
directory and prints the median. Not a profile: see `python -m cProfile` for where the time goes.

    .venv/bin/python benchmarks/bench_simulate.py --visitors 22000 --days 30 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from clickintent.sim import simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=22_000, help="about 46 events per visitor at 30 days")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--signal", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times, events = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            started = time.perf_counter()
            summary = simulate(Path(tmp) / str(i), visitors=args.visitors, days=args.days, seed=args.seed,
                               signal=args.signal)  # fmt: skip
            times.append(time.perf_counter() - started)
            events = summary.events
    median = statistics.median(times)
    print(f"simulate: {events:,} events, {args.visitors:,} visitors, {args.days} days")
    print(f"  median of {args.repeats}: {median:.2f} s  ({events / median:,.0f} events/s)")
    print("  runs: " + ", ".join(f"{t:.2f}" for t in times))


if __name__ == "__main__":
    main()
