"""Peers side by side (issue 8): session embeddings, clickintent's encoder vs pytorch-lifestream's CoLES.

Both learn without labels from the same simulated sessions (`clickintent.sim.simulate` -> ingest ->
sessionize, through `bench_encoder_quality.simulated_sessions`, imported), with the same wall-clock budget:
CoLES (`ptls` 0.7.0, GRU sequence encoder, its default contrastive loss and random-slice sampling) gets
exactly the seconds clickintent's `train()` took in this run. Both are scored with the intent probe of
`bench_encoder_quality --part sim` (its `probe_scores`, the same 70/30 split of the labelled web sessions
with the same seed; the shifted world with unseen pages; k-means NMI), and clickintent/CoLES ratios are
reported.

What CoLES sees: per event the page id (pages seen at least twice in training; others and unseen pages
share one "unknown" id, like clickintent's `min_page_count=2`), event type, device, referrer, whether it
carries a search query, log dwell and log time since the previous event. It has no text features (page
titles, search words, URL tokens): `ptls` encodes categorical and numeric fields, and that gap is part of
what this compares. The output width is the same as clickintent's (64) unless `--coles-hidden` says
otherwise.

Both models' embeddings are written in clickintent's `embeddings.parquet` format (`schema.EMBEDDINGS`:
session_id, embedding list<float32>, model_version) under `--work`, for every session of the training world
and for the same sessions cut before applications (`clickintent.cut.cut_sessions`, what downstream
evaluation takes). Downstream, `clickintent evaluate`'s code scores both on tile ranking and conversion
with the same seeds (so the same splits): baseline, + embedding, + true intent, and the ratios.

CoLES runs in its own venv (`benchmarks/peers/.venvs/lifestream`, created here with pip:
torch==2.13.0, pytorch-lifestream==0.7.0), used as released.

    python benchmarks/peers/coles_lifestream.py                       # ~10-20 min on the 2-core box
    python benchmarks/peers/coles_lifestream.py --visitors 1000 --budget-seconds 60    # a quick look
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench_encoder_quality (before torch loads OpenMP)

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_common import (
    PEERS,
    RESULTS,
    TORCH_PIN,
    ensure_venv,
    machine,
    ratio,
    rel,
    run_worker,
    table,
    versions,
    write_result,
)

# numpy>=2: pip 26 otherwise resolves numpy 1.26, which the pyarrow it installs (26) refuses to import.
REQUIREMENTS = [TORCH_PIN, "pytorch-lifestream==0.7.0", "numpy>=2"]
NAME = "coles_lifestream"


# --- CoLES features: plain categorical/numeric event fields ---------------------------------------------


def vocab(values: list[str | None], min_count: int) -> dict[str, int]:
    """value -> id (from 2; 0 = padding, 1 = unknown/rare), values seen at least `min_count` times."""
    counts = Counter("<none>" if v is None else v for v in values)
    keep = sorted(v for v, c in counts.items() if c >= min_count)
    return {v: i + 2 for i, v in enumerate(keep)}


def coles_features(table: pa.Table, vocabs: dict[str, dict[str, int]] | None = None) -> tuple[dict, dict]:
    """Flat per-event arrays + offsets for a SESSIONS table; the vocabularies are built when not given."""
    events = table.column("events").combine_chunks()
    offsets = events.offsets.to_numpy() - events.offsets[0].as_py()
    ev = events.flatten()
    field = {f: pc.struct_field(ev, f).to_pylist() for f in ("page", "event_type", "device", "referrer")}
    if vocabs is None:
        vocabs = {"page": vocab(field["page"], 2), "event_type": vocab(field["event_type"], 1),
                  "device": vocab(field["device"], 1), "referrer": vocab(field["referrer"], 2)}  # fmt: skip
    out: dict[str, np.ndarray] = {"offsets": offsets.astype(np.int64)}
    for f, vals in field.items():
        v = vocabs[f]
        out[f] = np.array([v.get("<none>" if x is None else x, 1) for x in vals], np.int64)
    out["has_query"] = np.where(pc.is_valid(pc.struct_field(ev, "search_query")).to_numpy(zero_copy_only=False), 3, 2)
    dwell = pc.fill_null(pc.struct_field(ev, "dwell_ms"), 0).to_numpy(zero_copy_only=False).astype(np.float64)
    out["log_dwell"] = np.log1p(np.maximum(dwell, 0) / 1000.0).astype(np.float32)
    ts = pc.struct_field(ev, "ts").cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64) / 1e6
    gap = np.zeros(len(ts))
    gap[1:] = np.maximum(ts[1:] - ts[:-1], 0.0)
    start = np.repeat(ts[offsets[:-1]] if len(ts) else np.zeros(0), np.diff(offsets))
    gap[offsets[:-1][np.diff(offsets) > 0]] = 0.0  # a session's first event
    out["log_gap"] = np.log1p(gap).astype(np.float32)
    out["event_time"] = (ts - start).astype(np.float32)
    sizes = {f"n_{f}": np.int64(len(v) + 2) for f, v in vocabs.items()} | {"n_has_query": np.int64(4)}
    return out, {"vocabs": vocabs, "sizes": sizes}


# --- downstream: tile ranking and conversion with each model's embedding ------------------------------


def downstream(sim_dir: Path, cut: pa.Table, embeddings: dict[str, Path], bootstrap: int) -> dict[str, Any]:
    """`clickintent evaluate` (the same code as the CLI) on the cut sessions with both embeddings at once.

    One split (docs/EVALUATION.md's protocol), the same rows and folds for both, so the clickintent/CoLES
    comparison is paired: "+ embedding - + CoLES" is the log-loss gain of clickintent's embedding over
    CoLES's, with a paired person-bootstrap CI. Both encoders here were trained on every person of the world
    (this benchmark compares representations, it is not the evidence run: benchmarks/bench_evidence.py
    trains on the learning visits only).
    """
    from clickintent.evaluate.ceiling import visit_probabilities
    from clickintent.evaluate.protocol import Protocol, split
    from clickintent.evaluate.run import Inputs, evaluate
    from clickintent.sim import PRODUCT_IDS
    from clickintent.sim.join import true_intents

    truth_dir = sim_dir / "truth"
    inputs = Inputs(
        sessions=cut, products=list(PRODUCT_IDS), split=split(cut, Protocol(bootstrap=bootstrap), sim_dir),
        true_intents=true_intents(cut, sim_dir), exact_visits=visit_probabilities(cut, sim_dir),
        customers=pq.read_table(truth_dir / "customers.parquet"),
        app_views=pq.read_table(truth_dir / "app_home.parquet"),
        conversions=pq.read_table(truth_dir / "conversions.parquet"),
        embeddings={"embedding" if name == "clickintent" else name: pq.read_table(path)
                    for name, path in embeddings.items()},
    )  # fmt: skip
    print("[coles] downstream: evaluate with both embeddings ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    res = evaluate(inputs)
    out: dict[str, Any] = {"seconds": round(time.perf_counter() - t0, 1), "not_applicable": res["not_applicable"]}
    for task, t in res["tasks"].items():
        run: dict[str, Any] = {"test_rows": t["test_rows"], "ceiling": t.get("ceiling", {}).get("log_loss_gain")}
        for fs in DOWNSTREAM_SETS:
            e = t["feature_sets"].get(fs)
            if e is not None:
                run[fs] = {"log_loss": e["metrics"]["log_loss"]["mean"], "gain": e.get("log_loss_gain"),
                           "ceiling_share": e.get("ceiling_share")}  # fmt: skip
        run["clickintent - coles"] = t["paired"].get("+ embedding - + CoLES")
        out[task] = run
    return out


DOWNSTREAM_SETS = ("baseline", "+ embedding", "+ CoLES", "+ true intent (oracle)")


# --- main -----------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--visitors", type=int, default=4000, help="simulated visitors (as bench_encoder_quality)")
    ap.add_argument("--seed", type=int, default=0, help="world seed, probe split seed, training seeds")
    ap.add_argument("--epochs", type=int, default=6, help="clickintent encoder epochs (TrainConfig default)")
    ap.add_argument("--budget-seconds", type=float, default=None,
                    help="CoLES training budget (default: clickintent's training time in this run)")  # fmt: skip
    ap.add_argument("--coles-hidden", type=int, default=64, help="CoLES GRU width = embedding width")
    ap.add_argument("--coles-batch-size", type=int, default=128, help="sessions per CoLES batch (x split count)")
    ap.add_argument("--work", type=Path, default=PEERS / ".work" / "coles",
                    help="kept: worlds, bundles and both embeddings files (git-ignored)")  # fmt: skip
    ap.add_argument("--bootstrap", type=int, default=1000, help="person-bootstrap replicates of the downstream CIs")
    ap.add_argument("--out", type=Path, default=RESULTS / f"{NAME}.json", help="results JSON")
    args = ap.parse_args()
    started = time.perf_counter()
    work = args.work.resolve()
    if work.exists():
        import shutil

        shutil.rmtree(work)  # simulate() wants fresh directories; everything here is regenerated
    work.mkdir(parents=True)
    python, install_s = ensure_venv("lifestream", REQUIREMENTS)
    result: dict[str, Any] = {
        "benchmark": NAME, "machine": machine(), "command": " ".join(["python", *sys.argv]),
        "peer_venv": {"requirements": REQUIREMENTS, "install_seconds": round(install_s, 1),
                      "versions": versions(python, ["pytorch-lifestream", "torch", "pytorch-lightning", "numpy"])},
    }  # fmt: skip

    from benchmarks import bench_encoder_quality as bq
    from clickintent.encoder.embed import Embedder, embed_file, embeddings_table
    from clickintent.encoder.model import EncoderConfig
    from clickintent.encoder.text import MiniLMEncoder, TextVectors
    from clickintent.encoder.train import TrainConfig, train

    # The worlds and the probe split: bench_encoder_quality's.
    print("[coles] simulating the worlds ...", file=sys.stderr, flush=True)
    pw = bq.probe_world(work, args.visitors, args.seed)
    sessions, labelled, shifted = pw.sessions, pw.labelled, pw.shifted
    result["data"] = pw.summary() | {"sim_dir": rel(work / "world")}

    # clickintent: bench_encoder_quality's "full" variant, timed (MiniLM text vectors computed inside train()).
    print("[coles] clickintent: training the encoder ...", file=sys.stderr, flush=True)
    text = TextVectors(MiniLMEncoder(), work / "text")
    t0 = time.perf_counter()
    res = train(sessions, work / "bundle-clickintent", EncoderConfig(use_text=True),
                TrainConfig(epochs=args.epochs, seed=args.seed), text=text, progress=False)  # fmt: skip
    ci_train_s = time.perf_counter() - t0
    emb = Embedder.from_bundle(work / "bundle-clickintent", device="cpu", text_cache=text.cache_dir)
    ci = pw.embedding_scores(emb.embed_sessions(labelled), emb.embed_sessions(shifted))
    ci["train"] = {"seconds": round(ci_train_s, 1), "epochs": res.epochs, "stopped": res.stopped,
                   "model_version": res.model_version, "embedding_dim": emb.out_dim}  # fmt: skip
    emb_paths = {"clickintent": work / "embeddings_clickintent.parquet", "coles": work / "embeddings_coles.parquet"}
    embed_file(work / "world" / "sessions.parquet", work / "bundle-clickintent", emb_paths["clickintent"],
               device="cpu", text_cache=text.cache_dir)  # fmt: skip
    # The sessions downstream evaluation takes: cut before applications, as the pipeline does.
    from clickintent.cut import cut_sessions

    cut, cut_report = cut_sessions(sessions)
    pq.write_table(cut, work / "sessions_cut.parquet")
    cut_paths = {k: v.with_name(v.stem + "_cut.parquet") for k, v in emb_paths.items()}
    embed_file(work / "sessions_cut.parquet", work / "bundle-clickintent", cut_paths["clickintent"], device="cpu",
               text_cache=text.cache_dir)  # fmt: skip
    result["clickintent"] = ci

    result["tfidf_pages"] = pw.tfidf_scores()  # the bench's reference probe, for scale

    # CoLES, same sessions, same budget.
    budget = args.budget_seconds if args.budget_seconds is not None else ci_train_s
    world_feat, meta = coles_features(sessions)
    shifted_feat, _ = coles_features(shifted, meta["vocabs"])
    cut_feat, _ = coles_features(cut, meta["vocabs"])
    npz = {f"world_{k}": v for k, v in world_feat.items()} | {f"shifted_{k}": v for k, v in shifted_feat.items()}
    npz |= {f"cut_{k}": v for k, v in cut_feat.items()}
    np.savez(work / "coles_input.npz", **npz, **meta["sizes"])
    print(f"[coles] CoLES: training for {budget:.0f}s ...", file=sys.stderr, flush=True)
    wall = run_worker(python, "_coles_worker.py", [
        "--data", str(work / "coles_input.npz"), "--out", str(work / "coles"), "--sets", "world", "shifted", "cut",
        "--budget-seconds", str(budget), "--hidden", str(args.coles_hidden),
        "--batch-size", str(args.coles_batch_size), "--seed", str(args.seed)], cwd=work / "coles")  # fmt: skip
    log = json.loads((work / "coles" / "log.json").read_text())
    z_world = np.load(work / "coles" / "emb_world.npy")
    z_shift = np.load(work / "coles" / "emb_shifted.npy")
    row = {sid: i for i, sid in enumerate(sessions.column("session_id").to_pylist())}
    lab_rows = np.array([row[s] for s in labelled.column("session_id").to_pylist()])
    coles = pw.embedding_scores(z_world[lab_rows], z_shift)
    coles["train"] = log | {"worker_wall_seconds": round(wall, 1), "budget_seconds": round(budget, 1),
                            "page_vocabulary": len(meta["vocabs"]["page"])}  # fmt: skip
    l2 = lambda z: z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)  # noqa: E731
    coles_l2 = pw.embedding_scores(l2(z_world[lab_rows]), l2(z_shift))
    ptls_version = result["peer_venv"]["versions"].get("pytorch-lifestream", "?")
    version = f"coles-ptls-{ptls_version}-h{args.coles_hidden}-s{args.seed}"
    pq.write_table(embeddings_table(sessions.column("session_id"), z_world, version), emb_paths["coles"])
    z_cut = np.load(work / "coles" / "emb_cut.npy")
    pq.write_table(embeddings_table(cut.column("session_id"), z_cut, version), cut_paths["coles"])
    result["coles"] = coles
    result["coles_l2_normalised"] = coles_l2
    result["embeddings"] = {k: rel(v) for k, v in emb_paths.items()}
    result["embeddings_cut_sessions"] = {k: rel(v) for k, v in cut_paths.items()}
    result["cut"] = {"sessions": rel(work / "sessions_cut.parquet"), "report": cut_report.lines()}
    result["downstream"] = downstream(work / "world", cut, cut_paths, args.bootstrap)

    # Ratios clickintent / CoLES.
    keys = [("in_catalogue", "accuracy"), ("in_catalogue", "macro_f1"), ("in_catalogue", "nmi"),
            ("shifted", "accuracy"), ("shifted_unseen_pages", "accuracy")]  # fmt: skip
    get = lambda s, k: s[k[0]][k[1]]  # noqa: E731
    result["ratios"] = {
        "clickintent_over_coles": {f"{a}.{b}": ratio(get(ci, (a, b)), get(coles, (a, b))) for a, b in keys}
        | {"kmeans_nmi": ratio(ci["kmeans_nmi"], coles["kmeans_nmi"])},
        "clickintent_over_coles_l2": {f"{a}.{b}": ratio(get(ci, (a, b)), get(coles_l2, (a, b))) for a, b in keys}
        | {"kmeans_nmi": ratio(ci["kmeans_nmi"], coles_l2["kmeans_nmi"])},
    }
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    path = write_result(NAME, result, args.out)

    def line(name: str, s: dict[str, Any], train_s: str) -> list[Any]:
        return [name, train_s, *[get(s, k) for k in keys], s.get("kmeans_nmi", "")]

    rows = [
        line("clickintent encoder", ci, f"{ci_train_s:.0f}s, {res.epochs} ep"),
        line("CoLES (ptls), raw", coles, f"{log['train_seconds']:.0f}s, {log['epochs']} ep"),
        line("CoLES (ptls), L2-normalised", coles_l2, "same model"),
        line("TF-IDF bag of pages", result["tfidf_pages"], "-"),
        ["clickintent / CoLES raw", "", *result["ratios"]["clickintent_over_coles"].values()],
        ["clickintent / CoLES L2", "", *result["ratios"]["clickintent_over_coles_l2"].values()],
    ]
    print(table(["features", "training", "acc", "macro-F1", "NMI", "shifted acc", "unseen-page acc", "k-means NMI"],
                rows))  # fmt: skip
    ds = result["downstream"]
    drows = []
    for task in ("tile ranking", "conversion"):
        t = ds.get(task)
        if not t:
            continue
        cells = [task]
        for fs in DOWNSTREAM_SETS[1:]:
            g = (t.get(fs) or {}).get("gain")
            cells.append("n/a" if g is None else f"{g['mean']:+.4f} [{g['ci'][0]:+.4f}, {g['ci'][1]:+.4f}]")
        d = t.get("clickintent - coles")
        cells.append("n/a" if d is None else f"{d['mean']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]")
        drows.append(cells)
    print("\n" + table(["task", "gain + clickintent emb.", "gain + CoLES emb.", "gain + true intent",
                        "clickintent - CoLES"], drows))  # fmt: skip
    print(f"\nembeddings: {result['embeddings']}\nresults: {path}  (wall {result['wall_seconds']:.0f}s)")


if __name__ == "__main__":
    main()
