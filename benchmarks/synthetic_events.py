"""Generate a realistic-shaped events.parquet fast (numpy), for sessionize and ingest benchmarks.

Visitors make visits of a few to a few dozen events with second-to-minute gaps inside a visit and
hours between visits; pages come from a Zipf-like catalogue. Not the simulator: no intents, no truth.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clickintent import schema


def synthetic_events(n_events: int, seed: int = 0, events_per_visitor: int = 25, first_visitor: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    n_visitors = max(1, n_events // events_per_visitor)
    visitor = np.sort(rng.integers(0, n_visitors, n_events))
    # within a visitor: mostly 5-120 s gaps, sometimes a multi-hour break that starts a new session
    gaps = np.where(rng.random(n_events) < 0.08, rng.exponential(6 * 3600, n_events), rng.exponential(40, n_events))
    first = np.r_[True, visitor[1:] != visitor[:-1]]
    start = rng.uniform(1.7e9, 1.7e9 + 30 * 86400, n_visitors)
    ts = np.cumsum(gaps)
    base = np.maximum.accumulate(np.where(first, np.arange(n_events), 0))
    ts = start[visitor] + ts - ts[base]
    n_pages = 2000
    page = np.minimum(rng.zipf(1.3, n_events), n_pages) - 1
    pages = np.array([f"https://www.examplebank.com/section-{p % 12}/page-{p}" for p in range(n_pages)])
    titles = np.array([f"Page {p} of section {p % 12}" for p in range(n_pages)])
    kinds = np.array(schema.KNOWN_EVENT_TYPES[:4])
    table = pa.table(
        {
            "visitor_id": pa.array(np.char.add("v", (visitor + first_visitor).astype(str))),
            "ts": pa.array((ts * 1e6).astype("int64"), pa.int64()).cast(schema.TS),
            "url": pa.array(pages[page]),
            "page": pa.array(np.char.replace(pages[page], "https://", "")),
            "page_title": pa.array(titles[page]),
            "event_type": pa.array(kinds[rng.integers(0, len(kinds), n_events)]),
            "device": pa.array(np.array(["desktop", "mobile", "tablet"])[rng.integers(0, 3, n_events)]),
            "referrer": pa.nulls(n_events, pa.string()),
            "search_query": pa.nulls(n_events, pa.string()),
            "dwell_ms": pa.nulls(n_events, pa.int64()),
            "platform": pa.array(np.full(n_events, "web")),
            "customer_id": pa.nulls(n_events, pa.string()),
            "session_id": pa.nulls(n_events, pa.string()),
        }
    )
    return table.cast(schema.EVENTS)


def write_synthetic(path: Path, n_events: int, seed: int = 0, chunk: int = 5_000_000, raw: bool = False) -> None:
    """Write `n_events` in chunks of `chunk` (bounded memory). raw=True drops `page` (a raw source file)."""
    columns = [c for c in schema.EVENTS.names if not (raw and c == "page")]
    writer: pq.ParquetWriter | None = None
    done = 0
    for i in range(0, n_events, chunk):
        n = min(chunk, n_events - i)
        table = synthetic_events(n, seed + i, first_visitor=done).select(columns)
        done += n
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=1_000_000)
    if writer is not None:
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw", action="store_true", help="write a raw source file (no derived page column)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    write_synthetic(args.out, args.events, args.seed, raw=args.raw)


if __name__ == "__main__":
    main()
