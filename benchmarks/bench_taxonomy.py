"""Taxonomy quality and cost on the simulated world (issue 5): LLM labels vs the true intents.

Pipeline: `clickintent.sim.simulate` -> ingest -> sessionize -> join the simulator's truth on (visitor_id,
platform, start, end) -> keep human web sessions with a true primary intent. From those, a generation sample
G (`--sample`) and a label sample L (the first `--label-sample` of G). Every method is scored on L:

- `cluster+llm`: `generate_cluster` on G (MiniLM text vectors, spectral clustering, the LLM names clusters), then the
  LLM labels L with that taxonomy (`label_sessions`, restricted choice, calibrated);
- `cluster+llm+neighbours` (with `--neighbours K`): the same, each prompt showing the K taxonomy example
  visits nearest the session instead of one fixed example per label (not calibrated, `label_sessions`'
  default with neighbours);
- `cluster assignment`: the clusters of the same build (spectral, the default), read off for L (no LLM
  labelling); `kmeans assignment`: k-means clusters of the same vectors, the earlier default (no LLM);
- `neighbours' majority` (with `--neighbours K`): no LLM, the most common label of the same K nearest
  taxonomy examples the LLM is shown, to see what its choice adds;
- `nearest description`: the non-LLM baseline, each session's MiniLM text vector against each label's
  "name: description" vector of the same taxonomy;
- `bertopic`: BERTopic on the same session texts and the same MiniLM vectors, fit on G, run in a separate
  virtualenv (`--bertopic-python`; never a clickintent dependency), skipped with a message when missing;
- `llm` mode (TnT-LLM) needs a capable instruction-following server and is run only with `--llm openai`.

Metrics: NMI and ARI vs the true intents, many-to-one accuracy (each predicted label mapped to its most
common true intent), labels found vs true intents; stability: ARI between the labelings of L from two
builds with different seeds; cost: calls, tokens and seconds per 1,000 labelled sessions, and per build (a
build's cost grows with the number of clusters, not sessions). Tokens count whole prompts, including the
few-shot prefix that the local backend keeps in its KV cache and evaluates once.

BERTopic lives in its own venv, created by this script with pip on first use
(`benchmarks/peers/.venvs/bertopic`, as the other peers: `bertopic` without its dependencies, then what it
needs when given vectors; no torch there), or `--bertopic-python` names an existing one. The JSON's
`ratios_over_bertopic` holds NMI and ARI of each clickintent method divided by BERTopic's.

    python benchmarks/bench_taxonomy.py --visitors 1500 --days 14 --sample 1000 --label-sample 200 \\
        --max-labels 20 --seeds 0 1 --out /tmp/taxonomy-bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from clickintent.encoder.text import MiniLMEncoder, TextVectors

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BERTOPIC_SCRIPT = r"""
import json, sys
import numpy as np
from bertopic import BERTopic
from hdbscan import HDBSCAN
from umap import UMAP
d = json.load(open(sys.argv[1]))
emb = np.load(sys.argv[2], allow_pickle=False)
out = {}
for seed in d["seeds"]:
    umap = UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=seed)
    hdb = HDBSCAN(min_cluster_size=d["min_topic_size"], metric="euclidean", prediction_data=True)
    model = BERTopic(umap_model=umap, hdbscan_model=hdb, calculate_probabilities=False)
    topics, _ = model.fit_transform(d["texts"], emb)
    out[str(seed)] = [int(t) for t in topics]
json.dump(out, open(sys.argv[3], "w"))
"""


class CachedEncoder(MiniLMEncoder):
    """MiniLM with its vectors cached (`TextVectors`), so every method and seed encodes a text once."""

    def __init__(self, cache_dir: Path) -> None:
        super().__init__()
        self.vectors = TextVectors(MiniLMEncoder(), cache_dir)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.vectors.lookup(list(texts))


def many_to_one(pred: list[str], truth: list[str]) -> float:
    """Accuracy when each predicted label is mapped to the true intent most common among its sessions."""
    by: dict[str, Counter[str]] = {}
    for p, t in zip(pred, truth, strict=True):
        by.setdefault(p, Counter())[t] += 1
    return sum(c.most_common(1)[0][1] for c in by.values()) / max(1, len(pred))


def scores(pred: list[str], truth: list[str]) -> dict[str, float | int]:
    return {
        "nmi": round(float(normalized_mutual_info_score(truth, pred)), 4),
        "ari": round(float(adjusted_rand_score(truth, pred)), 4),
        "many_to_one": round(many_to_one(pred, truth), 4),
        "labels_used": len(set(pred)),
    }


def world(
    tmp: Path, visitors: int, days: int, seed: int, sim_dir: Path | None = None
) -> tuple[pa.Table, dict[str, str], dict[str, Any]]:
    """Human web sessions with a true intent, and session_id -> true primary intent.

    `sim_dir`: an existing `simulate` output to use instead of simulating (visitors/days/seed then only
    describe it).
    """
    from clickintent.ingest import ingest
    from clickintent.sessionize import sessionize

    if sim_dir is None:
        from clickintent.sim import simulate

        sim_dir = tmp / "sim"
        simulate(sim_dir, visitors=visitors, days=days, seed=seed)
    ingest(sim_dir / "events.parquet", tmp / "ingest")
    sessionize(tmp / "ingest" / "events.parquet", tmp / "sessions.parquet")
    sessions = pq.read_table(tmp / "sessions.parquet")
    truth = pq.read_table(sim_dir / "truth" / "sessions.parquet")
    con = duckdb.connect()
    con.register("s", sessions.select(["session_id", "visitor_id", "platform", "start", "end"]))
    con.register("t", truth)
    rows = con.execute(
        'SELECT s.session_id, t.intent FROM s JOIN t USING (visitor_id, platform, start, "end") '
        "WHERE s.platform = 'web' AND NOT t.is_bot AND t.intent IS NOT NULL"
    ).fetchall()
    intent = dict(rows)
    keep = pa.array([sid in intent for sid in sessions.column("session_id").to_pylist()])
    info = {
        "sim_dir": str(sim_dir),
        "visitors": visitors,
        "days": days,
        "world_seed": seed,
        "sessions": sessions.num_rows,
        "scored_sessions": len(intent),
        "true_intents": len(set(intent.values())),
    }
    return sessions.filter(keep), intent, info


def usage_dict(llm: Any, steps: list[str] | None = None) -> dict[str, float | int]:
    items = [u for s, u in llm.usage.items() if steps is None or s in steps]
    calls = sum(u.calls for u in items)
    tokens = sum(u.tokens for u in items)
    secs = sum(u.seconds for u in items)
    hits = sum(u.cache_hits for u in items)
    return {"calls": calls, "cache_hits": hits, "tokens": tokens, "seconds": round(secs, 1)}


def per_1000(u: dict[str, float | int], n: int) -> dict[str, float]:
    return {k: round(float(u[k]) * 1000 / max(1, n), 1) for k in ("calls", "tokens", "seconds")}


BERTOPIC_NO_DEPS = ["bertopic==0.17.4"]
BERTOPIC_REQUIREMENTS = ["hdbscan", "umap-learn", "pandas", "scikit-learn", "plotly", "tqdm", "numpy", "pyyaml"]


def bertopic_python(given: str | None) -> str:
    """`given`, or the peers' own BERTopic venv (created with pip on first use)."""
    if given:
        return given
    sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
    from _common import ensure_venv

    python, _ = ensure_venv("bertopic", BERTOPIC_REQUIREMENTS, no_deps=BERTOPIC_NO_DEPS)
    return str(python)


def kmeans_assignment(vecs: np.ndarray, gen: pa.Table, label_ids: list[str], max_labels: int, seed: int) -> list[str]:
    """The earlier cluster mode's clusters (k-means, k by silhouette over 2..max_labels), read off for L."""
    from clickintent.taxonomy.generate import _normalize, cluster_vectors

    labels = cluster_vectors(_normalize(vecs), "kmeans", max_labels, seed)
    pos = {s: i for i, s in enumerate(gen.column("session_id").to_pylist())}
    return [f"k{labels[pos[s]]}" for s in label_ids]


def neighbour_majority(tax: Any, gen: pa.Table, lab: pa.Table, encoder: Any, k: int) -> dict[str, str]:
    """No LLM: the most common label among the `k` taxonomy examples nearest each session of L (the
    neighbours `--neighbours` shows the LLM; ties to the nearest), to show what the LLM's choice adds."""
    from clickintent.taxonomy.label import nearest_examples

    label_of = {sid: lb.id for lb in tax.labels for sid in lb.examples}
    near, _ = nearest_examples(lab, tax, gen, k, encoder)
    out = {}
    for sid, order in near.items():
        votes = Counter(label_of[s] for s in order)
        top = max(votes.values())
        out[sid] = next(label_of[s] for s in order if votes[label_of[s]] == top)
    return out


def run_bertopic(python: str, texts: list[str], emb: np.ndarray, seeds: list[int], tmp: Path) -> dict[str, Any]:
    if not Path(python).exists():
        return {"skipped": f"no BERTopic interpreter at {python} (make a separate venv: pip install bertopic)"}
    (tmp / "bt.json").write_text(json.dumps({"texts": texts, "seeds": seeds, "min_topic_size": 10}))
    np.save(tmp / "bt.npy", emb.astype(np.float32))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [python, "-c", BERTOPIC_SCRIPT, str(tmp / "bt.json"), str(tmp / "bt.npy"), str(tmp / "bt-out.json")],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return {"skipped": f"BERTopic failed: {proc.stderr[-800:]}"}
    return {"topics": json.loads((tmp / "bt-out.json").read_text()), "seconds": time.perf_counter() - t0}


def emit(results: dict[str, Any], out: Path | None) -> None:
    """Print the results JSON, and write it to `out` when given (the taxonomy and LLM benchmarks share it)."""
    text = json.dumps(results, indent=2)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--visitors", type=int, default=1500, help="simulated visitors")
    ap.add_argument("--days", type=int, default=14, help="simulated days")
    ap.add_argument("--world-seed", type=int, default=0, help="simulator seed")
    ap.add_argument("--world", type=Path, default=None, help="use this simulate() output instead of simulating")
    ap.add_argument("--sample", type=int, default=1000, help="sessions to build each taxonomy from (G)")
    ap.add_argument("--label-sample", type=int, default=300, help="sessions the LLM labels and all are scored on")
    ap.add_argument("--max-labels", type=int, default=20, help="taxonomy bound (the world has 18 intents)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="build seeds; two give stability")
    ap.add_argument(
        "--neighbours",
        type=int,
        default=0,
        help="also label L showing each session its K nearest taxonomy examples (cluster+llm+neighbours)",
    )
    ap.add_argument("--llm", choices=["local", "openai"], default="local", help="backend")
    ap.add_argument("--llm-base-url", default=None, help="openai backend URL (runs llm mode too)")
    ap.add_argument("--llm-model", default=None, help="openai backend model")
    ap.add_argument("--cache", type=Path, default=None, help="LLM cache (default: a fresh one, so costs are real)")
    ap.add_argument("--bertopic-python", default=None,
                    help="python of a venv with bertopic (default: peers/.venvs/bertopic, made here)")  # fmt: skip
    ap.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (world, caches, taxonomies)")
    args = ap.parse_args()

    from clickintent.llm import make_backend
    from clickintent.taxonomy.generate import generate_cluster, generate_llm
    from clickintent.taxonomy.label import label_sessions, nearest_description_labels
    from clickintent.taxonomy.render import digest_table, sample_sessions

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench-taxonomy-"))
    sessions, intent, info = world(tmp, args.visitors, args.days, args.world_seed, args.world)
    gen = sample_sessions(sessions, args.sample, seed=12345)  # one G for every method and seed
    label_ids = gen.column("session_id").to_pylist()[: args.label_sample]
    lab = gen.filter(pa.array([s in set(label_ids) for s in gen.column("session_id").to_pylist()]))
    label_ids = lab.column("session_id").to_pylist()
    truth = [intent[s] for s in label_ids]
    encoder = CachedEncoder(tmp / "text-vectors")
    digests = digest_table(gen)
    results: dict[str, Any] = {"world": info, "G": gen.num_rows, "L": len(label_ids), "methods": {}, "runs": []}
    print(f"world: {info}; G={gen.num_rows} L={len(label_ids)}", file=sys.stderr)

    runs: list[dict[str, Any]] = []
    for seed in args.seeds:
        cache = args.cache or tmp / f"cache-{seed}.sqlite"
        llm = make_backend(args.llm, cache=cache, base_url=args.llm_base_url, model=args.llm_model)
        built = generate_cluster(gen, llm, max_labels=args.max_labels, sample=None, seed=seed,
                                 text_encoder=encoder)  # fmt: skip
        build_usage = usage_dict(llm)
        tax = built.taxonomy
        t0 = time.perf_counter()
        labels = label_sessions(lab, tax, llm, sample=None, seed=seed, example_sessions=gen)
        label_usage = usage_dict(llm, ["labels", "labels (calibration)"])
        label_usage["wall_seconds"] = round(time.perf_counter() - t0, 1)
        got = dict(zip(labels.column("session_id").to_pylist(), labels.column("intent").to_pylist(), strict=True))
        llm_pred = [got[s] for s in label_ids]
        assign_pred = [built.assignments[s] for s in label_ids]
        nearest = nearest_description_labels({s: digests[s] for s in label_ids}, tax, encoder)
        near_pred = [nearest[s][0] for s in label_ids]
        conf = labels.column("confidence").to_numpy()
        extra: dict[str, Any] = {}
        if args.neighbours > 0:
            t0 = time.perf_counter()
            nb = label_sessions(lab, tax, llm, sample=None, seed=seed, examples=0, neighbours=args.neighbours,
                                example_sessions=gen, text_encoder=encoder, step="labels (neighbours)")  # fmt: skip
            nb_usage = usage_dict(llm, ["labels (neighbours)", "labels (neighbours) (calibration)"])
            nb_usage["wall_seconds"] = round(time.perf_counter() - t0, 1)
            got_nb = dict(zip(nb.column("session_id").to_pylist(), nb.column("intent").to_pylist(), strict=True))
            extra["cluster+llm+neighbours"] = scores([got_nb[s] for s in label_ids], truth) | {
                "neighbours": args.neighbours, "cost_per_1000": per_1000(nb_usage, len(label_ids))}  # fmt: skip
        if seed == args.seeds[0]:
            vecs = encoder.encode([digests[s] for s in gen.column("session_id").to_pylist()])
            extra["kmeans assignment"] = scores(kmeans_assignment(vecs, gen, label_ids, args.max_labels, seed), truth)
            if args.neighbours > 0:
                majority = neighbour_majority(tax, gen, lab, encoder, args.neighbours)
                extra["neighbours' majority"] = scores([majority[s] for s in label_ids], truth)
        run = {
            "seed": seed,
            "taxonomy": {"version": tax.version, "labels": len(tax.labels), "tree": tax.tree().split("\n")},
            "cluster+llm": scores(llm_pred, truth) | {"mean_confidence": round(float(conf.mean()), 3)},
            "cluster assignment": scores(assign_pred, truth),
            "nearest description": scores(near_pred, truth),
            **extra,
            "cost": {
                "build": build_usage,
                "label": label_usage,
                "label_per_1000": per_1000(label_usage, len(label_ids)),
            },
            "_pred": {"llm": llm_pred, "assign": assign_pred, "near": near_pred},
        }
        runs.append(run)
        print(json.dumps({k: v for k, v in run.items() if k not in ("_pred", "taxonomy")}), file=sys.stderr)
        print("\n".join(run["taxonomy"]["tree"]), file=sys.stderr)

    if args.llm == "openai" and args.llm_base_url:
        llm = make_backend("openai", cache=tmp / "cache-llm.sqlite", base_url=args.llm_base_url,
                           model=args.llm_model, endpoint="chat")  # fmt: skip
        built = generate_llm(gen, llm, max_labels=args.max_labels, sample=None, text_encoder=encoder)
        labels = label_sessions(lab, built.taxonomy, llm, sample=None, example_sessions=gen)
        got = dict(zip(labels.column("session_id").to_pylist(), labels.column("intent").to_pylist(), strict=True))
        results["methods"]["llm mode"] = scores([got[s] for s in label_ids], truth) | {"cost": usage_dict(llm)}
    else:
        results["methods"]["llm mode"] = {"skipped": "needs a capable instruction-following server (--llm openai)"}

    # BERTopic on the same texts and MiniLM vectors, fit on G, scored on L.
    emb = encoder.encode([digests[s] for s in gen.column("session_id").to_pylist()])
    gen_texts = [digests[s] for s in gen.column("session_id").to_pylist()]
    bt = run_bertopic(bertopic_python(args.bertopic_python), gen_texts, emb, args.seeds, tmp)
    pos = {s: i for i, s in enumerate(gen.column("session_id").to_pylist())}
    bt_preds: list[list[str]] = []
    if "topics" in bt:
        for seed in args.seeds:
            topics = bt["topics"][str(seed)]
            bt_preds.append([f"t{topics[pos[s]]}" for s in label_ids])
        results["methods"]["bertopic"] = scores(bt_preds[0], truth) | {
            "topics_found": len({t for t in bt["topics"][str(args.seeds[0])] if t >= 0}),
            "outlier_share": round(sum(p == "t-1" for p in bt_preds[0]) / len(bt_preds[0]), 3),
            "seconds_all_seeds": round(bt["seconds"], 1),
        }
    else:
        results["methods"]["bertopic"] = bt

    first = runs[0]
    names = ["cluster+llm", "cluster assignment", "kmeans assignment", "nearest description"]
    names += [n for n in ("cluster+llm+neighbours", "neighbours' majority") if n in first]
    for name in names:
        results["methods"][name] = first[name]
    if len(runs) > 1:
        results["stability_ari"] = {
            "cluster+llm": round(adjusted_rand_score(runs[0]["_pred"]["llm"], runs[1]["_pred"]["llm"]), 4),
            "cluster assignment": round(adjusted_rand_score(runs[0]["_pred"]["assign"], runs[1]["_pred"]["assign"]), 4),
            "nearest description": round(adjusted_rand_score(runs[0]["_pred"]["near"], runs[1]["_pred"]["near"]), 4),
        }
        if len(bt_preds) > 1:
            results["stability_ari"]["bertopic"] = round(adjusted_rand_score(bt_preds[0], bt_preds[1]), 4)
    bt_scores = results["methods"].get("bertopic", {})
    if "nmi" in bt_scores:
        results["ratios_over_bertopic"] = {
            name: {m: round(results["methods"][name][m] / bt_scores[m], 3) if bt_scores[m] else None
                   for m in ("nmi", "ari")}
            for name in names
        }  # fmt: skip
    results["runs"] = [{k: v for k, v in r.items() if k != "_pred"} for r in runs]
    results["true_intents"] = info["true_intents"]
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "llm": args.llm,
                          "n_threads": 1}  # fmt: skip
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        results["work_dir"] = str(tmp)
    emit(results, args.out)


if __name__ == "__main__":
    main()
