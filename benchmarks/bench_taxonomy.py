"""Taxonomy quality and cost on a simulated world (issues 5 and 19): what an analyst reads, and the labels.

Pipeline: `clickintent.sim.simulate` (`--config`, e.g. `shifted`) -> ingest -> sessionize -> join the
simulator's truth (`clickintent.sim.join.true_intents`, on visitor_id, platform, start) -> human web
sessions with a true primary intent.
From those, a build sample G (`--sample`) and a label sample L (the first `--label-sample` of G). Measured:

- **the taxonomy** (`generate_cluster` on G: MiniLM text vectors, `--clusterer`, the embedded LLM naming):
  `categories`, the share of labels whose category names a site section most of their visits are in, and
  `names`, the share named for their majority true intent by a blind MiniLM nearest-intent match of
  "name: description" (`taxonomy_checks.py`, written from the simulator's own catalogue and intents), with
  every label's row (its confusions); build seconds and LLM calls;
- **LLM labels** of L for each `--variants` entry (`label_sessions`; `+`-joined parts: `fixed` or `fixedN`
  one or N written-out visits per label, `nbK` the K nearest example visits, `none`; `topM` the M nearest
  labels as candidates (`nearE`: a label's cosine is the mean over its E example visits most like the visit,
  default `label.NEAREST_EXAMPLES`; `near20`: all of them, as before session 7); `nocal` without
  calibration; `wN` similarity weight N, default `label.SIMILARITY_WEIGHT`, `w0` the model's scores alone),
  the first being what ships (the CLI's default): NMI, ARI and many-to-one accuracy against the true
  intents, seconds per label (LLM time / calls) and tokens;
- **references** on the same L: the build's clusters, the nearest labels' first choice (what `topM`
  shortlists, no LLM), the nearest label description (no LLM), BERTopic on
  G's texts and MiniLM vectors (its own venv, `--bertopic-python`; never a clickintent dependency;
  `--no-bertopic` skips it);
- **distilled labels** (`--train-minutes` > 0): an encoder trained on the world's sessions for that long,
  the distilled classifier cross-fitted over 5 folds by visitor on the first variant's labels (as
  `clickintent distill` does), each session's LLM and distilled label read through the many-to-one map of
  the other folds; accuracy of both against the truth and the drop 1 - distilled / LLM, with a 95% CI from
  a bootstrap over visitors; for both classifier inputs (`by_inputs`: the embedding, and the embedding with
  the session's mean page-text vector) on the same labels, folds and draws, and the paired accuracy gain
  of the text (`text_gain`); `--distill-labels N ...` also fits the distiller on only the first N labelled
  sessions, with the same encoder (`distilled_by_labels`: how the drop falls with the labels it learns
  from; `taxonomy label` labels 2,000 by default).

    python -m benchmarks.bench_taxonomy --world-seed 31 --config shifted --label-sample 300 \\
        --out benchmarks/results/taxonomy_w31_shifted.json
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clickintent.encoder.text import MiniLMEncoder, TextVectors
from clickintent.evaluate.clusters import cluster_scores
from clickintent.sim.join import join_truth, true_intents

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


def scores(pred: list[str], truth: list[str]) -> dict[str, float | int]:
    """NMI, ARI, many-to-one and labels used, rounded (`clickintent.evaluate.clusters`)."""
    return cluster_scores(pred, truth).as_dict()


def world(
    tmp: Path, visitors: int, days: int, seed: int, sim_dir: Path | None = None, bots: bool = False
) -> tuple[pa.Table, dict[str, str], dict[str, Any]]:
    """Human web sessions with a true intent (and the world's web bots when `bots`, as a real export has
    them), and session_id -> true primary intent (bots have none).

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
    intent = true_intents(sessions, sim_dir)  # human web sessions: bots and app sessions have no intent
    keep_ids = set(intent)
    if bots:
        web = sessions.filter(pc.equal(sessions.column("platform"), "web"))
        ids, truth = join_truth(web, sim_dir, ["is_bot"])
        keep_ids |= {s for s, b in zip(ids, truth.column("is_bot").to_pylist(), strict=True) if b}
    keep = pa.array([sid in keep_ids for sid in sessions.column("session_id").to_pylist()])
    info = {
        "sim_dir": str(sim_dir),
        "visitors": visitors,
        "days": days,
        "world_seed": seed,
        "sessions": sessions.num_rows,
        "scored_sessions": len(intent),
        "true_intents": len(set(intent.values())),
        "bots": len(keep_ids) - len(intent),
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
    from peer_common import ensure_venv

    python, _ = ensure_venv("bertopic", BERTOPIC_REQUIREMENTS, no_deps=BERTOPIC_NO_DEPS)
    return str(python)


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


VARIANT_HELP = "label variants, '+'-joined: fixed|fixedN|nbK|none, topM, nearE, nocal, wN (first: what ships)"


def labelling(spec: str, pool: pa.Table, encoder: Any) -> dict[str, Any]:
    """`label_sessions` keyword arguments for a variant spec (see the module docstring)."""
    from clickintent.taxonomy import label as lab

    demos: list[Any] = []
    kw: dict[str, Any] = {"calibrate": True, "candidates": lab.AllLabels(), "similarity_weight": lab.SIMILARITY_WEIGHT}
    near = next((int(p[4:]) for p in spec.split("+") if p.startswith("near")), lab.NEAREST_EXAMPLES)
    for part in spec.split("+"):
        if part.startswith("fixed"):
            demos.append(lab.LabelVisits(int(part[5:] or 1)))
        elif part.startswith("nb"):
            demos.append(lab.NeighbourVisits(pool, int(part[2:]), encoder))
        elif part.startswith("top"):
            kw["candidates"] = lab.NearestLabels(pool, int(part[3:]), encoder, near)
        elif part == "nocal":
            kw["calibrate"] = False
        elif part.startswith("w") and part[1:].replace(".", "", 1).isdigit():
            kw["similarity_weight"] = float(part[1:])
        elif part != "none" and not part.startswith("near"):
            raise SystemExit(f"unknown variant part {part!r}; {VARIANT_HELP}")
    kw["demonstrations"] = (lab.Both(*demos) if len(demos) == 2 else demos[0]) if demos else lab.NoDemonstrations()
    return kw


def train_embedder(sim_sessions: Path, minutes: float, tmp: Path, seed: int) -> Any:
    """An encoder trained on the world's sessions for `minutes`, as an `Embedder`."""
    from clickintent.encoder.embed import Embedder
    from clickintent.encoder.train import TrainConfig, train

    result = train(sim_sessions, tmp / "bundle", config=TrainConfig(max_minutes=minutes, seed=seed, device="cpu"),
                   progress=False, resume=False)  # fmt: skip
    return Embedder.from_bundle(result.bundle, device="cpu")


def distilled(embedder: Any, lab: pa.Table, llm: dict[str, str], truth: dict[str, str], seed: int,
              boots: int = 1000) -> dict[str, Any]:  # fmt: skip
    """LLM vs distilled accuracy against the truth, cross-fitted by visitor, with a visitor bootstrap; the
    distiller is fitted once per classifier input (`clickintent.distill.features.INPUTS`) on the same labels,
    folds and bootstrap draws, so the two sit side by side (`by_inputs`; the top-level figures: embedding)."""
    from clickintent.distill.features import INPUTS, Inputs, classifier_input, session_text_means
    from clickintent.distill.fit import TRUTH_FOLDS, fit_classifier, fold_of, many_to_one, visitor_split

    t0 = time.perf_counter()
    frame = embedder.featurizer.frame(lab)
    emb, text = embedder.embed_frame(frame), session_text_means(frame)
    ids = lab.column("session_id").to_pylist()
    visitors = lab.column("visitor_id").to_pylist()
    y = [llm[s] for s in ids]
    fold, inner = fold_of(visitors, seed, TRUTH_FOLDS), visitor_split(visitors, seed + 1) == 1
    hit_llm = np.zeros(len(ids))
    hits = {inputs: np.zeros(len(ids)) for inputs in INPUTS}
    for k in range(TRUTH_FOLDS):
        test, rest = np.flatnonzero(fold == k), fold != k
        mapping = many_to_one([y[i] for i in np.flatnonzero(rest)], [truth[ids[i]] for i in np.flatnonzero(rest)])
        hit_llm[test] = [mapping.get(y[i]) == truth[ids[i]] for i in test]
        for inputs in INPUTS:
            X = classifier_input(inputs, emb, text)
            clf = fit_classifier(
                X, y, np.flatnonzero(rest & ~inner), np.flatnonzero(rest & inner), None, seed, inputs=inputs
            )
            pred, _ = clf.predict(X[test])
            hits[inputs][test] = [mapping.get(p) == truth[ids[i]] for p, i in zip(pred, test, strict=True)]
    people = sorted(set(visitors))
    rows = {v: np.flatnonzero(np.array(visitors) == v) for v in people}
    rng = np.random.default_rng(seed)
    drops: dict[str, list[float]] = {inputs: [] for inputs in INPUTS}
    diffs = []  # embedding+text minus embedding accuracy, same draws
    for _ in range(boots):
        take = np.concatenate([rows[people[j]] for j in rng.integers(0, len(people), len(people))])
        a = hit_llm[take].mean()
        for inputs in INPUTS:
            drops[inputs].append(1 - hits[inputs][take].mean() / a if a else 0.0)
        diffs.append(hits[INPUTS[1]][take].mean() - hits[INPUTS[0]][take].mean())
    acc_llm = float(hit_llm.mean())

    def side(inputs: Inputs) -> dict[str, Any]:
        acc = float(hits[inputs].mean())
        return {"distilled_accuracy": round(acc, 4), "drop": round(1 - acc / acc_llm, 4) if acc_llm else None,
                "drop_ci95": [round(float(q), 4) for q in np.percentile(drops[inputs], [2.5, 97.5])]}  # fmt: skip

    by_inputs = {inputs: side(inputs) for inputs in INPUTS}
    gain = float(hits[INPUTS[1]].mean() - hits[INPUTS[0]].mean())
    return {"sessions": len(ids), "visitors": len(people), "folds": TRUTH_FOLDS, "llm_accuracy": round(acc_llm, 4),
            **by_inputs[INPUTS[0]], "by_inputs": by_inputs,
            "text_gain": {"accuracy": round(gain, 4),
                          "ci95": [round(float(q), 4) for q in np.percentile(diffs, [2.5, 97.5])]},
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--visitors", type=int, default=1500, help="simulated visitors")
    ap.add_argument("--days", type=int, default=14, help="simulated days")
    ap.add_argument("--world-seed", type=int, default=31, help="simulator seed (31: issue 19's reported world)")
    ap.add_argument("--config", default=None, help="simulator config (e.g. shifted) [default: the default world]")
    ap.add_argument("--sample", type=int, default=1000, help="sessions to build the taxonomy from (G)")
    ap.add_argument("--label-sample", type=int, default=300, help="sessions the LLM labels and all are scored on")
    ap.add_argument("--max-labels", type=int, default=20, help="taxonomy bound (the world has 18 intents)")
    ap.add_argument("--clusterer", choices=["spectral", "kmeans"], default="spectral", help="the build's clusterer")
    ap.add_argument(
        "--vectors", choices=["text", "terms", "text+terms"], default="text", help="what the build clusters"
    )
    ap.add_argument("--clusters", type=int, default=None, help="exactly this many clusters (default: searched)")
    ap.add_argument("--seed", type=int, default=0, help="build seed")
    ap.add_argument("--bots", action="store_true",
                    help="the build sample G holds the world's web bots too, as a real export would (only sessions "
                    "with a true intent are labelled and scored)")  # fmt: skip
    ap.add_argument("--keep-crawls", action="store_true", help="build from machine-paced visits too (as the CLI's)")
    ap.add_argument("--variants", nargs="+", default=["fixed+top3"], help=VARIANT_HELP)
    ap.add_argument(
        "--train-minutes", type=float, default=3.0, help="encoder budget for the distilled labels (0: skip)"
    )
    ap.add_argument("--distill-labels", type=int, nargs="*", default=[],
                    help="also distil from only the first N of the labelled sessions, for each N under "
                    "--label-sample (how the drop falls with the labels the distiller learns from)")  # fmt: skip
    ap.add_argument("--cache", type=Path, default=None, help="LLM cache (default: a fresh one, so costs are real)")
    ap.add_argument("--bertopic-python", default=None,
                    help="python of a venv with bertopic (default: peers/.venvs/bertopic, made here)")  # fmt: skip
    ap.add_argument("--no-bertopic", action="store_true", help="skip the BERTopic reference (and its venv)")
    ap.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (world, caches, taxonomy)")
    args = ap.parse_args()

    from benchmarks.taxonomy_checks import SiteSections, category_check, name_check
    from clickintent.llm import Cache
    from clickintent.llm.local import LocalBackend
    from clickintent.sim import simulate
    from clickintent.taxonomy.cluster import KMeansClusterer, SpectralClusterer, k_range
    from clickintent.taxonomy.generate import generate_cluster
    from clickintent.taxonomy.label import NearestLabels, label_sessions, nearest_description_labels
    from clickintent.taxonomy.render import digest_table, sample_sessions

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench-taxonomy-"))
    simulate(tmp / "sim", visitors=args.visitors, days=args.days, seed=args.world_seed, config=args.config)
    sessions, intent, info = world(tmp, args.visitors, args.days, args.world_seed, tmp / "sim", bots=args.bots)
    info["config"] = args.config or "default"
    gen = sample_sessions(sessions, args.sample, seed=12345)
    human = gen.filter(pa.array([s in intent for s in gen.column("session_id").to_pylist()]))
    lab = human.slice(0, args.label_sample)  # only sessions with a true intent are labelled and scored
    label_ids = lab.column("session_id").to_pylist()
    truth = [intent[s] for s in label_ids]
    encoder = CachedEncoder(tmp / "text-vectors")
    llm = LocalBackend(n_threads=1, progress=False, cache=Cache(args.cache or tmp / "cache.sqlite"))
    print(f"world: {info}; G={gen.num_rows} L={len(label_ids)}", file=sys.stderr)

    k = args.clusters or k_range(args.max_labels)
    clusterer = (SpectralClusterer(k=k, seed=args.seed) if args.clusterer == "spectral"
                 else KMeansClusterer(k=args.clusters or range(2, args.max_labels + 1), seed=args.seed))  # fmt: skip
    t0 = time.perf_counter()
    built = generate_cluster(gen, llm, clusterer=clusterer, vectors=args.vectors, sample=None, seed=args.seed,
                             text_encoder=encoder, keep_crawls=args.keep_crawls)  # fmt: skip
    build_seconds = time.perf_counter() - t0
    tax = built.taxonomy
    events = dict(zip(gen.column("session_id").to_pylist(), gen.column("events").to_pylist(), strict=True))
    cats = category_check(tax, built.assignments, events, SiteSections.of(args.config))
    names = name_check(tax, built.assignments, intent, encoder)
    print(tax.tree(), file=sys.stderr)
    print(f"categories {cats.passed}/{cats.total}, names {names.passed}/{names.total}", file=sys.stderr)
    results: dict[str, Any] = {
        "world": info, "G": gen.num_rows, "L": len(label_ids), "vectors": args.vectors, "max_labels": args.max_labels,
        "clusters": args.clusters,
        "taxonomy": {"version": tax.version, "labels": len(tax.labels) - 1, "tree": tax.tree().split("\n"),
                     "build_seconds": round(build_seconds, 1), "build_usage": usage_dict(llm),
                     "categories": cats.to_dict(), "names": names.to_dict()},
        "methods": {},
    }  # fmt: skip

    first: dict[str, str] = {}
    for spec in args.variants:
        t0 = time.perf_counter()
        out = label_sessions(lab, tax, llm, sample=None, step=f"labels {spec}", **labelling(spec, gen, encoder))
        wall = time.perf_counter() - t0
        u = llm.usage[f"labels {spec}"]
        calls, secs, toks = u.calls, u.seconds, u.prompt_tokens  # each variant is its own step
        got = dict(zip(out.column("session_id").to_pylist(), out.column("intent").to_pylist(), strict=True))
        first = first or got
        results["methods"][f"llm labels ({spec})"] = scores([got[s] for s in label_ids], truth) | {
            "seconds_per_label": round(secs / max(1, calls), 3), "wall_seconds": round(wall, 1),
            "prompt_tokens_per_label": round(toks / max(1, u.requests)), "calls": calls}  # fmt: skip
        print(spec, results["methods"][f"llm labels ({spec})"], file=sys.stderr)

    results["methods"]["cluster assignment"] = scores([built.assignments.get(s, "other") for s in label_ids], truth)
    # The shortlist's own first choice, no LLM: what `topM` hands the model, to show what its choice adds.
    top1 = NearestLabels(gen, 1, encoder).choices(lab, tax)
    results["methods"]["nearest labels (no LLM)"] = scores([tax.by_name(top1[s][0]).id for s in label_ids], truth)
    digests = digest_table(gen)
    nearest = nearest_description_labels({s: digests[s] for s in label_ids}, tax, encoder)
    results["methods"]["nearest description"] = scores([nearest[s][0] for s in label_ids], truth)
    gen_ids = gen.column("session_id").to_pylist()
    bt: dict[str, Any] = {"skipped": "--no-bertopic"}
    if not args.no_bertopic:
        emb = encoder.encode([digests[s] for s in gen_ids])
        bt = run_bertopic(bertopic_python(args.bertopic_python), [digests[s] for s in gen_ids], emb, [args.seed], tmp)
    if "topics" in bt:
        topics = dict(zip(gen_ids, bt["topics"][str(args.seed)], strict=True))
        results["methods"]["bertopic"] = scores([f"t{topics[s]}" for s in label_ids], truth) | {
            "outlier_share": round(sum(topics[s] == -1 for s in label_ids) / len(label_ids), 3)}  # fmt: skip
    else:
        results["methods"]["bertopic"] = bt
    if args.train_minutes > 0:
        t0 = time.perf_counter()
        embedder = train_embedder(tmp / "sessions.parquet", args.train_minutes, tmp, args.seed)
        train_s = {"train_minutes": args.train_minutes, "train_seconds": round(time.perf_counter() - t0, 1)}
        results["distilled"] = distilled(embedder, lab, first, intent, args.seed) | train_s
        results["distilled_by_labels"] = {
            str(n): distilled(embedder, lab.slice(0, n), first, intent, args.seed)
            for n in sorted(set(args.distill_labels))
            if n < lab.num_rows
        }  # the same encoder, learning from only the first n labelled sessions
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "n_threads": 1,
                          "load_average": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    if args.keep:
        tax.save(tmp / "taxonomy.json")
        results["work_dir"] = str(tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    emit(results, args.out)


if __name__ == "__main__":
    main()
