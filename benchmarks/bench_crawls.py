"""How well `taxonomy build`'s machine-paced rule (`clickintent/taxonomy/crawls.py`) tells crawlers from
people: on simulated worlds against the truth's bots, and on the real YOOCHOOSE sample (no truth: only how
many sessions it would leave out, and how fast the long sessions there are).

For each `--world-seeds` world (default the development worlds 7, 11 and 13): simulate as `bench_taxonomy`
does, ingest, sessionize, and count web sessions, bots, flagged sessions, flagged bots and flagged people.
For each YOOCHOOSE clicks file under `--yoochoose` (ingested as tests/test_report.py does): sessions,
sessions arriving on 10+ items, how many are flagged, and the 5th/25th/50th percentile of the median time
between arrivals of those long sessions.

    python -m benchmarks.bench_crawls --out benchmarks/results/crawls.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from clickintent.ingest import IngestOptions, ingest
from clickintent.sessionize import sessionize
from clickintent.taxonomy.crawls import CRAWL_PAGES, arrival_times, machine_paced

KEY = ["visitor_id", "platform", "start"]
YOOCHOOSE = Path(__file__).resolve().parents[2] / "shared" / "data" / "yoochoose-100k"


def simulated(seed: int, visitors: int, days: int, tmp: Path) -> dict[str, Any]:
    from clickintent.sim import simulate

    d = tmp / f"world-{seed}"
    simulate(d, visitors=visitors, days=days, seed=seed)
    ingest(d / "events.parquet", d / "ingest")
    sessionize(d / "ingest" / "events.parquet", d / "sessions.parquet")
    table = pq.read_table(d / "sessions.parquet")
    s = table.select(KEY).to_pandas()
    s["paced"] = [machine_paced(e) for e in table.column("events").to_pylist()]
    web = s.merge(pd.read_parquet(d / "truth" / "sessions.parquet", columns=[*KEY, "is_bot"]), on=KEY)
    web = web[web.platform == "web"]
    return {"world_seed": seed, "web_sessions": len(web), "bots": int(web.is_bot.sum()),
            "flagged": int(web.paced.sum()), "bots_flagged": int((web.paced & web.is_bot).sum()),
            "people_flagged": int((web.paced & ~web.is_bot).sum())}  # fmt: skip


def real(path: Path, tmp: Path) -> dict[str, Any]:
    d = tmp / path.stem
    ingest(path, d, IngestOptions(mapping={"ts": "Time", "visitor_id": "SessionId", "url": "ItemId"}))
    sessionize(d / "events.parquet", d / "sessions.parquet")
    events = pq.read_table(d / "sessions.parquet").column("events").to_pylist()
    long = [times for e in events if len(times := arrival_times(e)) >= CRAWL_PAGES]
    gaps = [float(np.median(np.diff([t.timestamp() for t in times]))) for times in long]
    return {"file": path.name, "sessions": len(events), "long_sessions": len(long),
            "flagged": sum(machine_paced(e) for e in events),
            "long_median_gap_s_p5_p25_p50": [round(float(q), 1) for q in np.percentile(gaps, [5, 25, 50])]
            if gaps else None}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world-seeds", type=int, nargs="*", default=[7, 11, 13], help="simulated worlds")
    ap.add_argument("--visitors", type=int, default=1500)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--yoochoose", type=Path, default=YOOCHOOSE, help="folder of YOOCHOOSE clicks samples")
    ap.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-crawls-"))
    results: dict[str, Any] = {"rule": {"pages": CRAWL_PAGES}, "simulated": [], "real": []}
    for seed in args.world_seeds:
        results["simulated"].append(simulated(seed, args.visitors, args.days, tmp))
        print(results["simulated"][-1], flush=True)
    for path in sorted(args.yoochoose.glob("*clicks*.txt")) if args.yoochoose.is_dir() else []:
        results["real"].append(real(path, tmp))
        print(results["real"][-1], flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
