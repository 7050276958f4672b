"""Peers side by side (issue 8): next click on the real YOOCHOOSE sample, clickintent vs RecBole's SASRec and
GRU4Rec.

Same split, same candidates, same metric code as `benchmarks/bench_encoder_quality.py --part yoochoose`:
train on `yoochoose-clicks-100k_train_full.txt`, score every prefix i_1..i_k of every session of the test
file (the following day) on predicting i_{k+1}, all 2,933 training items ranked, nothing filtered; HR@20 and
MRR@20 by `bench_encoder_quality.rank_metrics` (imported, not copied).

- clickintent: the encoder pre-trained self-supervised on train_full (default config) and its three
  next-click read-outs (masked-event head, embedding kNN, linear head on the frozen embedding), computed with
  the bench's own functions. Its training time = encoder pre-training + linear-head fitting (embedding the
  training prefixes included), measured in this run.
- peers: RecBole 1.2.1 `SASRec` and `GRU4Rec` (CE loss over all items, RecBole defaults otherwise, except
  `--batch-size` 256 instead of 2048 and `--max-len` 20 instead of 50; see below), in their own venv
  (`benchmarks/peers/.venvs/recbole`, created here with pip). They train on the prefixes of train_full's
  sessions (the last `--max-len` items of each), 5% of the training sessions held out for model selection,
  and are scored twice: at the same wall-clock budget as clickintent's training ("budget") and after
  `--extended-seconds` or RecBole's early stopping ("extended").

Why those two settings: under a ~2-minute budget RecBole's default batch of 2048 gives ~25 optimizer steps
per epoch, so 256 is the kinder choice for the peer; 20 items cover 99% of the sessions (median 3 clicks) and
cut the fixed-length padding 2.5x. Neither was tuned on the test file.

Compatibility (recorded in the JSON): recbole 1.2.1 is used as released with torch 2.13.0 (CPU) and NumPy 2,
with `np.float_`, `np.complex_`, `np.unicode_` aliased back at run time in the worker (RecBole's config code
reads them); `pandas<3` (pandas 3 breaks RecBole's ID remapping); the training loop is a plain
loss/backward/step over RecBole's own DataLoader and optimizer, so that it can stop on a wall-clock budget.

    python benchmarks/peers/nextclick_recbole.py                    # ~15-20 min on the 2-core box
    python benchmarks/peers/nextclick_recbole.py --models SASRec --extended-seconds 0
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench_encoder_quality (before torch loads OpenMP)

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_common import (
    RESULTS,
    TORCH_PIN,
    ensure_venv,
    machine,
    ratio,
    run_worker,
    table,
    versions,
    write_result,
)

REQUIREMENTS = [TORCH_PIN, "recbole==1.2.1", "pandas<3"]
NAME = "nextclick_recbole"


def clickintent_side(args: argparse.Namespace, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The encoder part of `bench_encoder_quality.run_yoochoose`, with its helpers, timed; plus the split."""
    import torch

    from benchmarks import bench_encoder_quality as bq
    from clickintent.encoder.embed import Embedder
    from clickintent.encoder.model import EncoderConfig
    from clickintent.encoder.text import MiniLMEncoder, TextVectors
    from clickintent.encoder.train import TrainConfig, train

    tr_off, tr_items, tr_ts = bq.read_clicks(bq.YOOCHOOSE / "yoochoose-clicks-100k_train_full.txt")
    te_off, te_items, te_ts = bq.read_clicks(bq.YOOCHOOSE / "yoochoose-clicks-100k_test.txt")
    train_table = bq.sessions_from_index(
        [np.arange(tr_off[s], tr_off[s + 1]) for s in range(len(tr_off) - 1)], tr_items, tr_ts, "tr"
    )
    items = np.unique(tr_items)
    col = {it: j for j, it in enumerate(items)}
    t0 = time.perf_counter()
    text = TextVectors(MiniLMEncoder(), work / "text")
    cfg = TrainConfig(epochs=args.epochs, min_page_count=1, seed=args.seed, max_minutes=None)
    res = train(train_table, work / "yc-bundle", EncoderConfig(), cfg, text=text, progress=False)
    pretrain_s = time.perf_counter() - t0
    emb = Embedder.from_bundle(work / "yc-bundle", device="cpu", text_cache=work / "text", batch_size=512)
    item_cols = np.array([emb.featurizer.page_id(it) for it in items])
    te_index, te_target = bq.prefixes(te_off)
    target = np.array([col.get(it, -1) for it in te_items[te_target]])
    test_prefix = bq.sessions_from_index(te_index, te_items, te_ts, "te")
    scores: dict[str, dict[str, float]] = {}
    scores["masked_head"] = bq.rank_metrics(bq.masked_head_scores(emb, test_prefix, item_cols), target)
    z_test = emb.embed_sessions(test_prefix)
    single = bq.sessions_from_index(
        [np.array([np.flatnonzero(tr_items == it)[0]]) for it in items], tr_items, tr_ts, "i"
    )
    scores["embedding_knn"] = bq.rank_metrics(z_test @ emb.embed_sessions(single).T, target)
    t1 = time.perf_counter()
    tr_index, tr_target = bq.prefixes(tr_off)
    z_train = emb.embed_sessions(bq.sessions_from_index(tr_index, tr_items, tr_ts, "tp"))
    y_train = np.array([col[it] for it in tr_items[tr_target]])
    head = bq.linear_head_scores(z_train, y_train, z_test, len(items))
    head_s = time.perf_counter() - t1
    scores["linear_head"] = bq.rank_metrics(head, target)
    counts = np.bincount([col[it] for it in tr_items], minlength=len(items)).astype(np.float64)
    scores["popularity"] = bq.rank_metrics(np.broadcast_to(counts, (len(target), len(items))), target)
    info = {
        "train_sessions": len(tr_off) - 1, "train_clicks": len(tr_items), "items": len(items),
        "test_predictions": len(target), "test_targets_unknown": int((target < 0).sum()),
        "pretrain_seconds": round(pretrain_s, 1), "linear_head_seconds": round(head_s, 1),
        "train_seconds": round(pretrain_s + head_s, 1), "epochs": res.epochs, "stopped": res.stopped,
        "model_version": res.model_version, "torch_threads": torch.get_num_threads(), "scores": scores,
    }  # fmt: skip
    # The split, as item columns, for the peers: training prefixes (by session) and the test prefixes.
    rng = np.random.default_rng(args.seed)
    n_tr = len(tr_off) - 1
    held = np.zeros(n_tr, bool)
    held[rng.choice(n_tr, max(1, round(n_tr * args.valid_fraction)), replace=False)] = True
    tr_session = np.repeat(np.arange(n_tr), np.diff(tr_off) - 1)  # session of each training prefix
    tr_cols = np.array([col[it] for it in tr_items])

    def pack(index: list[np.ndarray], tgt: np.ndarray, cols: np.ndarray) -> dict[str, np.ndarray]:
        lengths = np.array([len(i) for i in index], np.int64)
        flat = np.concatenate(index) if index else np.zeros(0, np.int64)
        return {"items": cols[flat], "offsets": np.concatenate([[0], np.cumsum(lengths)]), "target": tgt}

    te_cols = np.array([col.get(it, -1) for it in te_items])
    split = {"n_items": np.int64(len(items))}
    for name, mask in (("train", ~held[tr_session]), ("valid", held[tr_session])):
        idx = np.flatnonzero(mask)
        part = pack([tr_index[i] for i in idx], tr_cols[tr_target[idx]], tr_cols)
        split |= {f"{name}_{k}": v for k, v in part.items()}
    split |= {f"test_{k}": v for k, v in pack(te_index, target, te_cols).items()}
    info["peer_split"] = {"train_prefixes": int((~held[tr_session]).sum()),
                          "valid_prefixes": int(held[tr_session].sum()),
                          "valid_sessions_held_out": int(held.sum())}  # fmt: skip
    return info, {"split": split, "target": target}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["SASRec", "GRU4Rec"], choices=["SASRec", "GRU4Rec"])
    ap.add_argument("--budget-seconds", type=float, default=None,
                    help="peer training budget (default: clickintent's training time in this run)")  # fmt: skip
    ap.add_argument("--extended-seconds", type=float, default=420.0,
                    help="second checkpoint: longer training (or RecBole's early stopping); 0 skips it")  # fmt: skip
    ap.add_argument("--batch-size", type=int, default=256, help="RecBole train_batch_size (its default: 2048)")
    ap.add_argument("--max-len", type=int, default=20, help="RecBole MAX_ITEM_LIST_LENGTH (its default: 50)")
    ap.add_argument("--valid-fraction", type=float, default=0.05, help="training sessions held out for the peers")
    ap.add_argument("--epochs", type=int, default=6, help="clickintent encoder epochs (TrainConfig default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="working directory (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=RESULTS / f"{NAME}.json", help="results JSON")
    args = ap.parse_args()
    started = time.perf_counter()
    work = (args.work or Path(tempfile.mkdtemp(prefix="peer-nextclick-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    python, install_s = ensure_venv("recbole", REQUIREMENTS)
    result: dict[str, Any] = {
        "benchmark": NAME, "machine": machine(), "command": " ".join(["python", *sys.argv]),
        "peer_venv": {"requirements": REQUIREMENTS, "install_seconds": round(install_s, 1),
                      "versions": versions(python, ["recbole", "torch", "numpy", "pandas", "scipy"])},
    }  # fmt: skip
    print("[nextclick] clickintent: pre-train + read-outs ...", file=sys.stderr, flush=True)
    ci, data = clickintent_side(args, work)
    result["clickintent"] = ci
    budget = args.budget_seconds if args.budget_seconds is not None else ci["train_seconds"]
    extended = max(args.extended_seconds, budget)
    result["budget_seconds"] = {"budget": round(budget, 1), "extended": round(extended, 1)}
    np.savez(work / "split.npz", **data["split"])
    target = data["target"]

    from benchmarks.bench_encoder_quality import rank_metrics

    peers: dict[str, Any] = {}
    for model in args.models:
        out = work / model
        print(f"[nextclick] {model}: budget {budget:.0f}s, extended {extended:.0f}s", file=sys.stderr, flush=True)
        wall = run_worker(python, "_recbole_worker.py", [
            "--data", str(work / "split.npz"), "--out", str(out), "--model", model,
            "--budget-seconds", str(budget), "--extended-seconds", str(extended),
            "--batch-size", str(args.batch_size), "--max-len", str(args.max_len)], cwd=out)  # fmt: skip
        log = json.loads((out / "log.json").read_text())
        peers[model] = {"wall_seconds": round(wall, 1), "log": log}
        for tag in ("budget", "extended"):
            if (out / f"scores_{tag}.npy").exists() and (tag == "budget" or args.extended_seconds > 0):
                peers[model][tag] = rank_metrics(np.load(out / f"scores_{tag}.npy"), target)
    result["peers"] = peers

    # Ratios clickintent / peer: each clickintent read-out, and the best read-out per metric.
    metrics = ["HR@20", "MRR@20"]
    cs = ci["scores"]
    best_ci = {m: max(cs[k][m] for k in ("masked_head", "embedding_knn", "linear_head")) for m in metrics}
    ratios: dict[str, Any] = {}
    rows = []
    for k in ("masked_head", "embedding_knn", "linear_head", "popularity"):
        rows.append([f"clickintent {k}" if k != "popularity" else "popularity", f"{ci['train_seconds']:.0f}s"
                     if k != "popularity" else "", cs[k]["HR@20"], cs[k]["MRR@20"], "", ""])  # fmt: skip
    for model, p in peers.items():
        for tag in ("budget", "extended"):
            if tag not in p:
                continue
            r = {m: ratio(best_ci[m], p[tag][m]) for m in metrics}
            per = {k: {m: ratio(cs[k][m], p[tag][m]) for m in metrics}
                   for k in ("masked_head", "embedding_knn", "linear_head")}  # fmt: skip
            ratios[f"{model}/{tag}"] = {"best_clickintent_over_peer": r, "per_readout": per}
            ck = p["log"]["checkpoints"][tag]
            rows.append([f"RecBole {model} ({tag})", f"{ck['train_seconds']:.0f}s, {ck['epochs_completed']} ep",
                         p[tag]["HR@20"], p[tag]["MRR@20"], r["HR@20"], r["MRR@20"]])  # fmt: skip
    result["ratios"] = ratios
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    result["work_dir"] = str(work)
    path = write_result(NAME, result, args.out)
    print(table(["method", "training", "HR@20", "MRR@20", "best clickintent / peer HR", "MRR"], rows))
    load = result["machine"]["loadavg_1m_at_start"]
    print(f"\nresults: {path}  (wall {result['wall_seconds']:.0f}s, load average at start {load})")


if __name__ == "__main__":
    main()
