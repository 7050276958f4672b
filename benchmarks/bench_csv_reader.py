"""What reading CSV costs since issue 17: ingest's own record reader against DuckDB's `read_csv` (the reader
ingest used before, which stopped silently at an unterminated quote), and a whole `ingest` of the same file.

The file is `--rows` generated click rows (six columns, no quotes). Each repeat times both readers in
alternating order, so both see the same load; medians are printed with the 1-minute load average.

    python -m benchmarks.bench_csv_reader --rows 500000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from clickintent.ingest import IngestOptions, ingest
from clickintent.ingest.readers import iter_batches

NAMES = ["Visitor", "When", "Link", "Title", "Kind", "Query"]
MAPPING = {"visitor_id": "Visitor", "ts": "When", "url": "Link", "page_title": "Title", "event_type": "Kind",
           "search_query": "Query"}  # fmt: skip


def write(path: Path, rows: int) -> None:
    with path.open("w") as f:
        f.write(",".join(NAMES) + "\n")
        for i in range(rows):
            f.write(f"v{i % 5000},{1709287200 + i},https://www.bank.com/p/{i % 300},Title {i % 300},click,\n")


def ours(path: Path) -> int:
    return sum(b.rows.num_rows for b in iter_batches(path, "csv", ",", 250_000))


def duckdb_reader(path: Path) -> int:
    con = duckdb.connect()
    rel = con.sql(
        "SELECT * FROM read_csv(?, columns=?, header=true, auto_detect=false, delim=',', quote='\"', escape='\"', "
        "store_rejects=true, parallel=false)",
        params=[str(path), {n: "VARCHAR" for n in NAMES}],
    )
    n = sum(b.num_rows for b in rel.to_arrow_reader(250_000))
    con.close()
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=500_000, help="rows in the generated CSV")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (medians reported)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.csv"
        write(path, args.rows)
        secs: dict[str, list[float]] = {"clickintent reader": [], "duckdb read_csv": [], "whole ingest": []}
        for r in range(args.repeats):
            readers = [("clickintent reader", ours), ("duckdb read_csv", duckdb_reader)]
            for name, fn in readers if r % 2 == 0 else readers[::-1]:
                t0 = time.perf_counter()
                assert fn(path) == args.rows
                secs[name].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ingest(path, Path(tmp) / f"out{r}", IngestOptions(mapping=MAPPING))
            secs["whole ingest"].append(time.perf_counter() - t0)
        result = {
            "rows": args.rows,
            "load_1min": round(os.getloadavg()[0], 2),
            "median_seconds": {k: round(statistics.median(v), 2) for k, v in secs.items()},
            "rows_per_second": {k: round(args.rows / statistics.median(v)) for k, v in secs.items()},
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
