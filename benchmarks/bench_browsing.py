"""What `taxonomy build`'s browsing rule (`generate.is_browsing`) reads, label by label, beside the truth.

For each `--world-seeds` world (default the development worlds 7, 11 and 13; simulated as
`bench_taxonomy` does, the same build sample G and build): every label's share of visits in its largest
section other than the home page (its *focus*), its share that see the home page, whether the rule calls
it browsing, and the simulator's majority intent among its visits with that intent's share. The summary
gives the focus range of the labels whose majority is casual browsing and of all others: the threshold
`FOCUS` sits in the gap between them.

    python -m benchmarks.bench_browsing --out benchmarks/results/browsing_focus.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.bench_taxonomy import CachedEncoder, world
from clickintent.llm import Cache
from clickintent.llm.local import LocalBackend
from clickintent.taxonomy.generate import events_terms, generate_cluster, is_browsing, section_shares
from clickintent.taxonomy.phrases import HOME, SiteMap
from clickintent.taxonomy.render import sample_sessions

CASUAL = "casual_browsing"


def labels_of(seed: int, sample: int, cache: Path | None, tmp: Path) -> list[dict[str, Any]]:
    sessions, intent, _ = world(tmp, 1500, 14, seed)
    gen = sample_sessions(sessions, sample, seed=12345)
    llm = LocalBackend(n_threads=1, progress=False, cache=Cache(cache or tmp / "cache.sqlite"))
    built = generate_cluster(gen, llm, sample=None, seed=0, text_encoder=CachedEncoder(tmp / "text-vectors"))
    ids, events = gen.column("session_id").to_pylist(), gen.column("events").to_pylist()
    site = SiteMap.learn(events, events_terms(events)[0])
    sections = [site.sections(e) for e in events]
    rows = []
    for lb in built.taxonomy.labels[:-1]:
        members = [i for i, s in enumerate(ids) if built.assignments.get(s) == lb.id]
        shares = section_shares(sections, members)
        counts = Counter(intent[ids[i]] for i in members if ids[i] in intent)
        majority, n = counts.most_common(1)[0] if counts else ("", 0)
        share = n / max(1, sum(counts.values()))
        rows.append({"world_seed": seed, "label": lb.name, "category": lb.category, "visits": len(members),
                     "focus": round(max((v for s, v in shares.items() if s != HOME), default=0.0), 3),
                     "home": round(shares.get(HOME, 0.0), 3), "browsing": is_browsing(shares),
                     "majority_intent": majority, "majority_share": round(share, 3)})  # fmt: skip
    return rows


def span(rows: list[dict[str, Any]], key: str) -> list[float]:
    return [min(r[key] for r in rows), max(r[key] for r in rows)] if rows else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world-seeds", type=int, nargs="+", default=[7, 11, 13], help="simulated worlds")
    ap.add_argument("--sample", type=int, default=1000, help="sessions to build each taxonomy from (G)")
    ap.add_argument("--cache", type=Path, default=None, help="LLM cache (default: a fresh one per world)")
    ap.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    for seed in args.world_seeds:
        with tempfile.TemporaryDirectory(prefix=f"bench-browsing-{seed}-") as tmp:
            rows += labels_of(seed, args.sample, args.cache, Path(tmp))
    casual = [r for r in rows if r["majority_intent"] == CASUAL]
    others = [r for r in rows if r["majority_intent"] != CASUAL]
    summary = {
        "casual_browsing_labels": len(casual), "casual_focus": span(casual, "focus"),
        "casual_home": span(casual, "home"),
        "casual_called_browsing": sum(r["browsing"] for r in casual),
        "other_labels": len(others), "other_focus": span(others, "focus"), "other_home": span(others, "home"),
        "other_called_browsing": sum(r["browsing"] for r in others),
    }  # fmt: skip
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"summary": summary, "labels": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
