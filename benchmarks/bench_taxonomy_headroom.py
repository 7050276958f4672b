"""How much of the true intent the session words hold at all, beside what the clusterers find (issue 5).

A diagnostic for `bench_taxonomy.py`, on the same world and the same sessions: G (`--sample`) and L (its
first `--label-sample`, where every method of that benchmark is scored). No LLM. Rows:

- `supervised probe`: logistic regression trained on the TRUE intents of G (5-fold, each session
  predicted by a model that never saw it) on the same MiniLM digest vectors every method clusters: what
  any labelling built on these vectors could reach if it knew the answer. It is an upper reference, not a
  method; nothing is chosen from it.
- `bertopic` (each build seed), `spectral` and `kmeans` (clickintent's `SpectralClusterer` and
  `KMeansClusterer`, build seed 0): clusters of the same vectors, as in `bench_taxonomy.py`.

Each scored on all of G and on L. NMI on 200 sessions reads higher than on 1,000 (a small sample's mutual
information is biased upwards), so the two columns are not comparable with each other, only down a column.

    python -m benchmarks.bench_taxonomy_headroom --out benchmarks/results/taxonomy_headroom.json
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from benchmarks.bench_taxonomy import CachedEncoder, bertopic_python, emit, run_bertopic, scores, world


def both(pred: list[str], truth: list[str], n_label: int) -> dict[str, Any]:
    return {"G": scores(pred, truth), "L": scores(pred[:n_label], truth[:n_label])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--visitors", type=int, default=1500, help="simulated visitors")
    ap.add_argument("--days", type=int, default=14, help="simulated days")
    ap.add_argument("--world-seed", type=int, default=0, help="simulator seed (0: bench_taxonomy's world)")
    ap.add_argument("--sample", type=int, default=1000, help="sessions in G")
    ap.add_argument("--label-sample", type=int, default=200, help="sessions in L (the first of G)")
    ap.add_argument("--max-labels", type=int, default=20, help="cluster bound, as bench_taxonomy")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="BERTopic seeds")
    ap.add_argument("--bertopic-python", default=None, help="python of a venv with bertopic")
    ap.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    args = ap.parse_args()

    from clickintent.taxonomy.cluster import KMeansClusterer, SpectralClusterer, k_range, normalize
    from clickintent.taxonomy.render import digest_table, sample_sessions

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench-headroom-"))
    try:
        sessions, intent, info = world(tmp, args.visitors, args.days, args.world_seed)
        gen = sample_sessions(sessions, args.sample, seed=12345)  # bench_taxonomy's G
        ids = gen.column("session_id").to_pylist()
        truth = [intent[s] for s in ids]
        digests = digest_table(gen)
        texts = [digests[s] for s in ids]
        x = normalize(CachedEncoder(tmp / "text-vectors").encode(texts))
        n = min(args.label_sample, len(ids))
        rows: dict[str, Any] = {}
        probe = cross_val_predict(LogisticRegression(max_iter=3000), x, truth, cv=5)
        rows["supervised probe (true intents, 5-fold)"] = both([str(p) for p in probe], truth, n)
        bt = run_bertopic(bertopic_python(args.bertopic_python), texts, x, args.seeds, tmp)
        for seed in args.seeds if "topics" in bt else []:
            rows[f"bertopic seed {seed}"] = both([f"t{t}" for t in bt["topics"][str(seed)]], truth, n)
        if "topics" not in bt:
            rows["bertopic"] = bt
        clusterers = {"spectral": SpectralClusterer(k=k_range(args.max_labels)),
                      "kmeans": KMeansClusterer(k=range(2, args.max_labels + 1))}  # fmt: skip
        for name, clusterer in clusterers.items():
            labels = clusterer.fit_predict(x)
            rows[f"{name} (build seed 0)"] = both([str(c) for c in labels], truth, n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results = {"world": info, "G": len(ids), "L": n, "methods": rows,
               "wall_seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    for name, r in rows.items():
        if "G" in r:
            print(f"{name:42s} NMI G {r['G']['nmi']:.4f}  L {r['L']['nmi']:.4f}", file=sys.stderr)
    emit(results, args.out)


if __name__ == "__main__":
    main()
