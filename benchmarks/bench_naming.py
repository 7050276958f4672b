"""How much a name candidate's coverage should count (issue 19's names goal), on development worlds only.

For each `--world-seeds` world (default 7 and 11, never the reported 31): simulate, take the build sample
G as `bench_taxonomy` does, and build the taxonomy once per `--weights` value of `generate_cluster`'s
`coverage_weight` (the log share of the cluster's visits with a candidate phrase, added to the model's
calibrated score), with `--clusterer` (spectral, the bench's, or kmeans, the demo's). One LLM cache per
world, so every build after the first only re-ranks: the model's scores do not depend on the weight.
Reported per weight: `names` and `categories` (`taxonomy_checks.py`) and every label's name.

    python -m benchmarks.bench_naming --out benchmarks/results/naming_dev_coverage.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world-seeds", type=int, nargs="+", default=[7, 11], help="development worlds")
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0])
    ap.add_argument("--clusterer", choices=["spectral", "kmeans"], default="spectral")
    ap.add_argument("--max-labels", type=int, default=20, help="taxonomy bound (the world has 18 intents)")
    ap.add_argument("--visitors", type=int, default=1500)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--sample", type=int, default=1000, help="build sample G")
    ap.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    args = ap.parse_args()

    from benchmarks.bench_taxonomy import CachedEncoder, world
    from benchmarks.taxonomy_checks import SiteSections, category_check, name_check
    from clickintent.llm import Cache
    from clickintent.llm.local import LocalBackend
    from clickintent.taxonomy.cluster import KMeansClusterer, SpectralClusterer, k_range
    from clickintent.taxonomy.generate import generate_cluster
    from clickintent.taxonomy.render import sample_sessions

    results: dict[str, Any] = {"clusterer": args.clusterer, "max_labels": args.max_labels, "worlds": {}}
    for seed in args.world_seeds:
        tmp = Path(tempfile.mkdtemp(prefix=f"bench-naming-{seed}-"))
        sessions, intent, info = world(tmp, args.visitors, args.days, seed)
        gen = sample_sessions(sessions, args.sample, seed=12345)
        events = dict(zip(gen.column("session_id").to_pylist(), gen.column("events").to_pylist(), strict=True))
        encoder = CachedEncoder(tmp / "text-vectors")
        llm = LocalBackend(n_threads=1, progress=False, cache=Cache(tmp / "cache.sqlite"))
        rows = {}
        for weight in args.weights:
            clusterer = (SpectralClusterer(k=k_range(args.max_labels), seed=0) if args.clusterer == "spectral"
                         else KMeansClusterer(k=range(2, args.max_labels + 1), seed=0))  # fmt: skip
            t0 = time.perf_counter()
            built = generate_cluster(gen, llm, clusterer=clusterer, sample=None, seed=0, text_encoder=encoder,
                                     coverage_weight=weight)  # fmt: skip
            names = name_check(built.taxonomy, built.assignments, intent, encoder)
            cats = category_check(built.taxonomy, built.assignments, events, SiteSections.of(None))
            rows[str(weight)] = {"names": names.to_dict(), "categories": cats.to_dict(),
                                 "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
            print(f"world {seed} weight {weight}: names {names.passed}/{names.total}, "
                  f"categories {cats.passed}/{cats.total}", file=sys.stderr)  # fmt: skip
        results["worlds"][str(seed)] = {"world": info, "by_weight": rows}
    text = json.dumps(results, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(json.dumps({s: {w: r["names"]["share"] for w, r in v["by_weight"].items()}
                      for s, v in results["worlds"].items()}))  # fmt: skip


if __name__ == "__main__":
    main()
