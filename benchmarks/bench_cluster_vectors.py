"""Which session vectors and how many clusters give every true intent a cluster of its own (issue 19's
mixed clusters), on development worlds only, without the LLM.

For each `--world-seeds` world (default 7, 11 and 13, never the reported 31): simulate as `bench_taxonomy`
does, take the build sample G (`--sample`), make each `--vectors` kind (`generate.session_vectors`: MiniLM
vectors of a visit's words, TF-IDF vectors of its terms, or both) and cluster them with the spectral
clusterer for each `--k` (a fixed k, or `lo-hi`: the best silhouette in that range, as `taxonomy build`
does with `--max-labels hi`). Reported per run: NMI and many-to-one accuracy of the clusters against the
true intents, the number of clusters, how many are mixed (no intent has 60% of them), and the intents
that are the majority of no cluster (so no label can be named for them).

    python -m benchmarks.bench_cluster_vectors --out benchmarks/results/cluster_vectors_dev.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

MIXED = 0.6


def parse_k(text: str) -> int | range:
    lo, _, hi = text.partition("-")
    return range(int(lo), int(hi) + 1) if hi else int(lo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world-seeds", type=int, nargs="+", default=[7, 11, 13], help="development worlds")
    ap.add_argument("--vectors", nargs="+", default=["text", "terms", "text+terms"])
    ap.add_argument("--k", nargs="+", default=["10-20", "20", "24", "28"], help="fixed k or lo-hi (silhouette)")
    ap.add_argument("--sample", type=int, nargs="+", default=[1000, 2000], help="build sample sizes G")
    ap.add_argument("--visitors", type=int, default=1500)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    args = ap.parse_args()

    from benchmarks.bench_taxonomy import CachedEncoder, scores, world
    from clickintent.taxonomy.cluster import SpectralClusterer
    from clickintent.taxonomy.generate import DistinctEncoder, session_vectors, table_terms
    from clickintent.taxonomy.render import sample_sessions

    rows: list[dict[str, Any]] = []
    for seed in args.world_seeds:
        tmp = Path(tempfile.mkdtemp(prefix=f"bench-cluster-vectors-{seed}-"))
        sessions, intent, _ = world(tmp, args.visitors, args.days, seed)
        encoder = DistinctEncoder(CachedEncoder(tmp / "text-vectors"))
        for g in args.sample:
            gen = sample_sessions(sessions, g, seed=12345)
            truth = [intent[s] for s in gen.column("session_id").to_pylist()]
            terms = table_terms(gen)[1]
            for vectors in args.vectors:
                _, x = session_vectors(gen, None, encoder, vectors, terms)
                for k_text in args.k:
                    assign = SpectralClusterer(k=parse_k(k_text), seed=0).fit_predict(x).tolist()
                    majority, mixed = set(), 0
                    for c in set(assign):
                        counts = Counter(t for t, a in zip(truth, assign, strict=True) if a == c)
                        top, n = counts.most_common(1)[0]
                        majority.add(top)
                        mixed += n / sum(counts.values()) < MIXED
                    sc = scores([str(a) for a in assign], truth)
                    row = {"world": seed, "G": gen.num_rows, "vectors": vectors, "k": k_text,
                           "clusters": len(set(assign)), "nmi": sc["nmi"], "many_to_one": sc["many_to_one"],
                           "mixed": mixed, "no_cluster_of_their_own": sorted(set(truth) - majority)}  # fmt: skip
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr)
    text = json.dumps({"visitors": args.visitors, "days": args.days, "mixed_below": MIXED, "runs": rows}, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
