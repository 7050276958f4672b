"""The power calculation behind the benchmark's world size (docs/EVALUATION.md): no model runs here.

For each candidate world size, on a development world seed: simulate at the default signal, ingest,
sessionize, cut, split with the default protocol, build both tasks' rows, and read off the test rows' exact
ceiling (the world's own probabilities with the web visit against without it) with its paired person-bootstrap
CI. A feature set that captures half the ceiling is resolved (95% CI excluding zero, 80% power) when
half the ceiling is at least 2.8 standard errors of a gain; the ceiling's own bootstrap SE stands in for a
gain's SE (on development world 101 a fitted oracle's gain had 0.8x the ceiling's SE, so this is cautious).

    python -m benchmarks.bench_power --visitors 10000 20000 40000 --seed 101 --out benchmarks/results/power.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from clickintent.cut import cut_sessions
from clickintent.evaluate.ceiling import visit_probabilities
from clickintent.evaluate.features import customer_features, web_sessions
from clickintent.evaluate.metrics import row_log_loss
from clickintent.evaluate.protocol import Protocol, split
from clickintent.evaluate.summary import interval
from clickintent.evaluate.tasks import conversion_task, tile_task
from clickintent.ingest import ingest
from clickintent.sessionize import sessionize
from clickintent.sim import PRODUCT_IDS, simulate


def ceiling_power(visitors: int, days: int, seed: int, signal: float, work: Path, bootstrap: int) -> dict[str, Any]:
    """The test rows' ceiling per task for one world, with its bootstrap SE and the resolution ratio."""
    sim = work / "sim"
    simulate(sim, visitors=visitors, days=days, seed=seed, signal=signal)
    ingest(sim / "events.parquet", work / "data")
    sessionize(work / "data" / "events.parquet", work / "data" / "sessions.parquet")
    visits, _ = cut_sessions(pq.read_table(work / "data" / "sessions.parquet"))
    s = split(visits, Protocol(), sim_dir=sim)
    web = web_sessions(visits)
    truth = sim / "truth"
    customers = customer_features(pq.read_table(truth / "customers.parquet"))
    products = list(PRODUCT_IDS)
    tasks = {
        "tile ranking": tile_task(web, pq.read_table(truth / "app_home.parquet"), customers, products, s),
        "conversion": conversion_task(
            web,
            pq.read_table(truth / "conversions.parquet"),
            customers,
            products,
            s,
            exact=visit_probabilities(visits, sim),
        ),
    }
    out: dict[str, Any] = {"visitors": visitors, "days": days, "seed": seed, "signal": signal}
    rng = np.random.default_rng(seed)
    for name, task in tasks.items():
        folds = s.folds_of_keys(task.person)
        test = np.flatnonzero((folds >= 0) & (task.time >= s.cut_us) & (task.outcome_end <= s.end_us))
        train = np.flatnonzero((folds >= 0) & (task.outcome_end <= s.cut_us))
        assert task.exact_full is not None and task.exact_profile is not None
        gain = row_log_loss(task.exact_profile[test], task.y[test]) - row_log_loss(task.exact_full[test], task.y[test])
        _, index = np.unique(task.person[test], return_inverse=True)
        n_people = int(index.max()) + 1
        boot = []
        for _ in range(bootstrap):
            w = np.bincount(rng.integers(0, n_people, n_people), minlength=n_people)[index]
            boot.append(float((w * gain).sum() / w.sum()))
        se = float(np.std(boot))
        out[name] = {
            "test_rows": len(test), "test_people": n_people, "training_rows_all_folds": len(train),
            "ceiling": float(gain.mean()), "ceiling_ci": interval(np.array(boot)), "se": se,
            "half_ceiling_over_se": float(gain.mean() / 2 / se) if se else None,
            "resolves_half_ceiling": bool(se and gain.mean() / 2 >= 2.8 * se),
        }  # fmt: skip
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--visitors", type=int, nargs="+", default=[10_000, 20_000, 40_000])
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--seed", type=int, default=101, help="A development world seed (never a reported one).")
    p.add_argument("--signal", type=float, default=0.5)
    p.add_argument("--bootstrap", type=int, default=500)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/power.json"))
    args = p.parse_args()
    rows = []
    for n in args.visitors:
        work = Path(tempfile.mkdtemp(prefix="power-"))
        t0 = time.perf_counter()
        try:
            row = ceiling_power(n, args.days, args.seed, args.signal, work, args.bootstrap)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        for task in ("tile ranking", "conversion"):
            r = row[task]
            print(f"{n:>7,} visitors  {task:<13} test rows {r['test_rows']:>7,}  ceiling {r['ceiling']:.4f} "
                  f"[{r['ceiling_ci'][0]:.4f}, {r['ceiling_ci'][1]:.4f}]  half / SE {r['half_ceiling_over_se']:.1f}"
                  f"  {'resolves' if r['resolves_half_ceiling'] else 'does NOT resolve'} half the ceiling")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"simulated": True, "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
