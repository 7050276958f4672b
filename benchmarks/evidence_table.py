"""Issue 18's goals read from a `bench_evidence` results file, as the tables docs/BENCHMARKS.md records.

    python -m benchmarks.evidence_table benchmarks/results/evidence.json

- the placebo: every feature set's gain at signal 0, per task, and whether its CI (over world seeds)
  contains zero;
- at the default signal (0.5): each gain, its share of the exact ceiling, and the embedding against the
  page bag, the random encoder and CoLES, paired within each world (the same rows) and t-intervals over the
  seeds of the per-seed differences;
- the paper's comparisons (b) and (c) on the labelled visits, and the share of the LLM labels' gain the
  distilled labels keep.
Simulated data throughout.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
DEFAULT_SIGNAL = 0.5


def t_interval(values: list[float]) -> tuple[float, float, float]:
    x = np.asarray(values, float)
    m = float(x.mean())
    if len(x) < 2:
        return m, m, m
    h = T975.get(len(x) - 1, 1.96) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return m, m - h, m + h


def cell(m: float, lo: float, hi: float, fmt: str = "+.4f") -> str:
    return f"{m:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def gains(ev: dict[str, Any], signal: float, task: str, part: str | None = None) -> dict[str, list[float]]:
    """Per feature set, the per-seed gains at `signal` (the same rows in each seed for every set)."""
    out: dict[str, list[float]] = {}
    for seed in ev["seeds"]:
        res = ev["runs"][str(seed)][f"{signal:g}"]["tasks"].get(task)
        res = res and (res.get(part) if part else res)
        if not res:
            continue
        for name, e in res["feature_sets"].items():
            if e.get("log_loss_gain"):
                out.setdefault(name, []).append(e["log_loss_gain"]["mean"])
        if "ceiling" in res:
            out.setdefault("exact ceiling", []).append(res["ceiling"]["log_loss_gain"]["mean"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("evidence", type=Path, nargs="?", default=Path("benchmarks/results/evidence.json"))
    ev = json.loads(ap.parse_args().evidence.read_text())
    print(f"world seeds {ev['seeds']}, {ev['visitors']:,} visitors, {ev['days']} days; "
          f"wall {ev['wall_seconds'] / 60:.1f} min; simulated\n")  # fmt: skip
    for task in ("tile ranking", "conversion"):
        print(f"### {task}\n")
        print("| feature set | placebo gain (signal 0) | CI contains 0 | gain at 0.5 | share of ceiling |")
        print("|---|---|---|---|---|")
        g0, g5 = gains(ev, 0.0, task), gains(ev, DEFAULT_SIGNAL, task)
        ceiling = g5.get("exact ceiling", [])
        for name in g5:
            p = t_interval(g0.get(name, [0.0]))
            s = t_interval(g5[name])
            share = t_interval([a / c for a, c in zip(g5[name], ceiling, strict=True)]) if ceiling else None
            print(f"| {name} | {cell(*p)} | {'yes' if p[1] <= 0 <= p[2] else 'NO'} | {cell(*s)} | "
                  f"{'' if share is None else cell(*share, fmt='.0%')} |")  # fmt: skip
        print()
        emb = g5.get("+ embedding")
        for other in ("+ page bag", "+ random encoder", "+ CoLES"):
            if emb and other in g5:
                d = t_interval([a - b for a, b in zip(emb, g5[other], strict=True)])
                verdict = "beats it" if d[1] > 0 else ("loses" if d[2] < 0 else "not resolved")
                print(f"- {task}: + embedding - {other}: {cell(*d)} nats per row ({verdict})")
        print()
    lab = gains(ev, DEFAULT_SIGNAL, "conversion", "labelled")
    print("### conversion on the LLM-labelled evaluation visits (signal 0.5)\n")
    for a, b in (("+ embedding", "+ LLM labels"), ("+ distilled labels", "+ LLM labels")):
        if a in lab and b in lab:
            print(f"- {a} - {b}: {cell(*t_interval([x - y for x, y in zip(lab[a], lab[b], strict=True)]))}")
    if "+ distilled labels" in lab and "+ LLM labels" in lab:
        kept = [x / y for x, y in zip(lab["+ distilled labels"], lab["+ LLM labels"], strict=True)]
        print(f"- distilled / LLM gain, per seed: {', '.join(f'{k:.2f}' for k in kept)} (LLM gains "
              f"{', '.join(f'{y:+.4f}' for y in lab['+ LLM labels'])})")  # fmt: skip


if __name__ == "__main__":
    main()
