"""Encoder quality: next-click on real YOOCHOOSE data, and intent probes on the simulated bank.

Part `yoochoose` (real logs, ../shared/data/yoochoose-100k; train_full vs test, split by time as shipped):
the encoder is pre-trained self-supervised on train_full only, then every test prefix i_1..i_k predicts
i_{k+1} (the session-rec protocol, items ranked among all training items, nothing filtered), reporting
HR@20 and MRR@20 for
- `encoder_masked_head`: the pre-trained masked-event head at a [MASK]ed slot after the prefix (zero-shot);
- `encoder_embedding_knn`: cosine between the prefix embedding and each item's one-event-session embedding;
- `encoder_linear_head`: a softmax layer on the frozen prefix embedding, fitted on train_full prefixes;
- `popularity` and `item_knn` (cosine of session co-occurrence with the last item) as baselines.
No setting is chosen on the test file: hyper-parameters are the defaults, fixed before looking.

Part `sim` (simulated bank, clickintent.sim; ingest + sessionize as in the pipeline): the encoder trains
on the default world; a logistic-regression probe maps embeddings of labelled web sessions to the true
intent (accuracy, macro-F1, NMI) beside a TF-IDF bag-of-pages probe; the shifted world (config
"shifted": a new intent mix and pages the training world never had) is embedded with the same encoder
and scored by the same fitted probes; ablations retrain without text, without the contrastive loss and
without the masked loss.

    python -m benchmarks.bench_encoder_quality --part yoochoose
    python -m benchmarks.bench_encoder_quality --part sim --visitors 4000
"""

from __future__ import annotations

import os

# Before torch loads OpenMP (see clickintent/encoder/__init__.py): 10-50x faster on a shared 2-core box.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from clickintent.encoder.embed import Embedder
from clickintent.encoder.features import collate
from clickintent.encoder.model import EncoderConfig
from clickintent.encoder.text import MiniLMEncoder, TextVectors
from clickintent.encoder.train import TrainConfig, train
from clickintent.schema import SESSION_EVENT, SESSIONS

YOOCHOOSE = Path(__file__).resolve().parents[2] / "shared" / "data" / "yoochoose-100k"
K = 20


# --- YOOCHOOSE ----------------------------------------------------------------------------------------


def read_clicks(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(session offsets, item ids as strings, timestamps in µs), sessions ordered by id then time."""
    import pandas as pd

    df = pd.read_csv(path, sep="\t", dtype={"SessionId": np.int64, "ItemId": np.int64, "Time": np.float64})
    df = df.sort_values(["SessionId", "Time"], kind="stable")
    sizes = df.groupby("SessionId", sort=True).size().to_numpy()
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    return offsets, df["ItemId"].astype(str).to_numpy(), (df["Time"].to_numpy() * 1e6).astype(np.int64)


def sessions_from_index(index: list[np.ndarray], items: np.ndarray, ts: np.ndarray, prefix: str) -> pa.Table:
    """A SESSIONS table whose session j holds the clicks at positions index[j]."""
    flat = np.concatenate(index) if index else np.zeros(0, np.int64)
    lengths = np.array([len(i) for i in index], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    n = len(flat)
    page = pa.array(items[flat], pa.string())
    t = pa.array(ts[flat], pa.timestamp("us", tz="UTC"))
    null_s, null_i = pa.nulls(n, pa.string()), pa.nulls(n, pa.int64())
    struct = pa.StructArray.from_arrays(
        [t, page, page, null_s, pa.array(["click"] * n), null_s, null_s, null_s, null_i],
        fields=list(SESSION_EVENT),
    )
    events = pa.ListArray.from_arrays(pa.array(offsets), struct)
    starts = pa.array(ts[flat[offsets[:-1]]] if n else [], pa.timestamp("us", tz="UTC"))
    ends = pa.array(ts[flat[offsets[1:] - 1]] if n else [], pa.timestamp("us", tz="UTC"))
    ids = pa.array([f"{prefix}{j}" for j in range(len(index))], pa.string())
    return pa.Table.from_arrays(
        [ids, ids, pa.nulls(len(index), pa.string()), pa.array(["web"] * len(index)), starts, ends,
         pa.array(lengths, pa.int32()), events],
        schema=SESSIONS,
    )  # fmt: skip


def prefixes(offsets: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """All prefixes i_1..i_k (k < n) of every session, and the position of each one's next click."""
    index, target = [], []
    for s in range(len(offsets) - 1):
        lo, hi = offsets[s], offsets[s + 1]
        for k in range(lo + 1, hi):
            index.append(np.arange(lo, k))
            target.append(k)
    return index, np.array(target, np.int64)


def rank_metrics(scores: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """HR@K and MRR@K; scores [N, n_items] (higher is better), target [N] item column (-1: unknown)."""
    hits, rr = np.zeros(len(target)), np.zeros(len(target))
    for i in range(0, len(target), 2048):
        s, t = scores[i : i + 2048], target[i : i + 2048]
        ok = t >= 0
        ts = np.where(ok, s[np.arange(len(t)), np.maximum(t, 0)], np.inf)
        rank = (s > ts[:, None]).sum(1)  # items scored strictly higher
        top = ok & (rank < K)
        hits[i : i + 2048] = top
        rr[i : i + 2048] = np.where(top, 1.0 / (rank + 1), 0.0)
    return {f"HR@{K}": round(float(hits.mean()), 4), f"MRR@{K}": round(float(rr.mean()), 4)}


def masked_head_scores(emb: Embedder, table: pa.Table, item_cols: np.ndarray) -> np.ndarray:
    """Page-head logits at a masked slot appended after each session (the slot's content is hidden)."""
    frame = emb.featurizer.frame(table)
    model, out = emb.model, []
    keep = model.config.max_events - 1  # room for the slot
    lengths = np.minimum(frame.lengths, keep)
    starts = frame.lengths - lengths
    with torch.inference_mode():
        for i in range(0, len(frame), 512):
            rows = np.arange(i, min(i + 512, len(frame)))
            # one extra slot per session: a copy of its last event, then masked entirely
            batch = collate(frame, rows, starts[rows], lengths[rows])
            B, T = batch.page.shape
            idx = torch.from_numpy(lengths[rows])
            ext = {}
            for name in ("page", "page_bucket", "url", "title", "query", "event_type", "device", "dwell", "gap",
                         "referrer"):  # fmt: skip
                col = getattr(batch, name)
                col = torch.cat([col, torch.zeros(B, 1, dtype=col.dtype)], 1)
                col[torch.arange(B), idx] = col[torch.arange(B), idx - 1]
                ext[name] = col
            batch = type(batch)(**{**batch.__dict__, **ext, "lengths": batch.lengths + 1})
            mask = torch.zeros(B, T + 1, dtype=torch.bool)
            mask[torch.arange(B), idx] = True
            _, h = model(batch, mask)
            assert h is not None
            logits = model.page_head(h[torch.arange(B), idx])  # [B, n_page_ids]
            out.append(logits[:, item_cols].numpy())
    return np.concatenate(out)


def linear_head_scores(
    z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, n_items: int, seed: int = 0
) -> np.ndarray:
    """A softmax layer on frozen embeddings, fitted on the training prefixes (fixed epochs, no test use)."""
    torch.manual_seed(seed)
    keep = y_train >= 0
    x, y = torch.from_numpy(z_train[keep]), torch.from_numpy(y_train[keep])
    head = torch.nn.Linear(x.shape[1], n_items)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(20):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 512):
            j = perm[i : i + 512]
            loss = torch.nn.functional.cross_entropy(head(x[j] * 10), y[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return head(torch.from_numpy(z_test) * 10).numpy()


def run_yoochoose(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    tr_off, tr_items, tr_ts = read_clicks(YOOCHOOSE / "yoochoose-clicks-100k_train_full.txt")
    te_off, te_items, te_ts = read_clicks(YOOCHOOSE / "yoochoose-clicks-100k_test.txt")
    train_table = sessions_from_index(
        [np.arange(tr_off[s], tr_off[s + 1]) for s in range(len(tr_off) - 1)], tr_items, tr_ts, "tr"
    )
    items = np.unique(tr_items)
    col = {it: j for j, it in enumerate(items)}
    t0 = time.perf_counter()
    text = TextVectors(MiniLMEncoder(), work / "text")  # YOOCHOOSE has no text: nothing gets encoded
    cfg = TrainConfig(epochs=args.epochs, min_page_count=1, seed=args.seed, max_minutes=args.max_minutes)
    res = train(train_table, work / "yc-bundle", EncoderConfig(), cfg, text=text, progress=args.progress)
    train_s = time.perf_counter() - t0
    emb = Embedder.from_bundle(work / "yc-bundle", device="cpu", text_cache=work / "text", batch_size=512)
    item_cols = np.array([emb.featurizer.page_id(it) for it in items])  # page ids (OOV: bucket) of the items

    te_index, te_target = prefixes(te_off)
    target = np.array([col.get(it, -1) for it in te_items[te_target]])
    test_prefix = sessions_from_index(te_index, te_items, te_ts, "te")
    result: dict[str, Any] = {
        "train_sessions": len(tr_off) - 1, "train_clicks": len(tr_items), "items": len(items),
        "test_predictions": len(target), "test_targets_unknown": int((target < 0).sum()),
        "encoder": {"train_seconds": round(train_s, 1), "epochs": res.epochs, "stopped": res.stopped,
                    "best_val_loss": round(res.best_val_loss, 4), "model_version": res.model_version},
    }  # fmt: skip
    scores: dict[str, dict[str, float]] = {}
    t = time.perf_counter()
    scores["encoder_masked_head"] = rank_metrics(masked_head_scores(emb, test_prefix, item_cols), target)

    print(f"masked head scored in {time.perf_counter() - t:.1f}s", flush=True)
    t = time.perf_counter()
    z_test = emb.embed_sessions(test_prefix)
    single = sessions_from_index([np.array([np.flatnonzero(tr_items == it)[0]]) for it in items], tr_items, tr_ts, "i")
    z_items = emb.embed_sessions(single)
    scores["encoder_embedding_knn"] = rank_metrics(z_test @ z_items.T, target)

    print(f"embedding kNN scored in {time.perf_counter() - t:.1f}s", flush=True)
    t = time.perf_counter()
    tr_index, tr_target = prefixes(tr_off)
    z_train = emb.embed_sessions(sessions_from_index(tr_index, tr_items, tr_ts, "tp"))
    y_train = np.array([col[it] for it in tr_items[tr_target]])
    scores["encoder_linear_head"] = rank_metrics(linear_head_scores(z_train, y_train, z_test, len(items)), target)

    print(f"linear head fitted and scored in {time.perf_counter() - t:.1f}s", flush=True)
    # baselines
    counts = np.bincount([col[it] for it in tr_items], minlength=len(items)).astype(np.float64)
    scores["popularity"] = rank_metrics(np.broadcast_to(counts, (len(target), len(items))), target)
    rows = np.repeat(np.arange(len(tr_off) - 1), np.diff(tr_off))  # session of each click
    from scipy.sparse import csr_matrix

    cols = [col[it] for it in tr_items]
    x = csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), (len(tr_off) - 1, len(items)))
    x.data[:] = 1.0  # session x item, binary (duplicates summed, then clipped)
    co = (x.T @ x).toarray()
    norm = np.sqrt(np.diag(co))
    sim = co / np.maximum(np.outer(norm, norm), 1e-9)
    np.fill_diagonal(sim, 0.0)
    last = np.array([col.get(te_items[ix[-1]], -1) for ix in te_index])
    knn = np.where(last[:, None] >= 0, sim[np.maximum(last, 0)], 0.0) + 1e-9 * counts  # ties -> popularity
    scores["item_knn"] = rank_metrics(knn, target)
    result["scores"] = scores
    return result


# --- simulated world ----------------------------------------------------------------------------------


def simulated_sessions(
    work: Path, name: str, visitors: int, seed: int, config: str | None
) -> tuple[pa.Table, pa.Table]:
    """(sessions, labelled web sessions with `intent`) for a simulated world, through ingest + sessionize."""
    from clickintent.ingest import ingest
    from clickintent.sessionize import sessionize
    from clickintent.sim import simulate

    d = work / name
    simulate(d, visitors=visitors, days=30, seed=seed, config=config)
    ingest(d / "events.parquet", d / "ingested")
    sessionize(d / "ingested" / "events.parquet", d / "sessions.parquet")
    sessions = pq.read_table(d / "sessions.parquet")
    truth = pq.read_table(
        d / "truth" / "sessions.parquet", columns=["visitor_id", "platform", "start", "end", "intent"]
    )
    truth = truth.filter(pc.is_valid(truth["intent"]))
    keys = ["visitor_id", "platform", "start", "end"]
    keyed = sessions.select(keys).append_column("row", pa.array(np.arange(len(sessions))))
    joined = keyed.join(truth, keys=keys, join_type="inner")
    joined = joined.filter(pc.equal(joined["platform"], "web")).sort_by("row")
    labelled = sessions.take(joined["row"]).append_column("intent", joined["intent"])
    return sessions, labelled


def probe_scores(
    z_fit: np.ndarray, y_fit: np.ndarray, evals: dict[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, normalized_mutual_info_score

    clf = LogisticRegression(max_iter=2000, C=1.0).fit(z_fit, y_fit)
    out = {}
    for name, (z, y) in evals.items():
        pred = clf.predict(z)
        out[name] = {
            "accuracy": round(float((pred == y).mean()), 4),
            "macro_f1": round(float(f1_score(y, pred, average="macro")), 4),
            "nmi": round(float(normalized_mutual_info_score(y, pred)), 4),
        }
    return out


def pages_text(table: pa.Table) -> list[str]:
    return [" ".join((e["page"] or "").replace(" ", "_") for e in evs) for evs in table.column("events").to_pylist()]


@dataclass
class ProbeWorld:
    """The simulated world of the intent probe: its sessions, the labelled web sessions, a shifted world
    (with pages the first never had) and the 70/30 probe split; shared with benchmarks/peers."""

    sessions: pa.Table
    labelled: pa.Table
    shifted: pa.Table
    y: np.ndarray
    y_shift: np.ndarray
    fit: np.ndarray
    ev: np.ndarray
    unseen: np.ndarray  # shifted sessions touching a page the training world never had

    def summary(self) -> dict[str, Any]:
        return {
            "world_sessions": len(self.sessions), "labelled_web_sessions": len(self.y), "intents": len(set(self.y)),
            "shifted_labelled_sessions": len(self.y_shift),
            "shifted_sessions_with_unseen_pages": int(self.unseen.sum()),
        }  # fmt: skip

    def scores(self, x: Any, x_shift: Any) -> dict[str, Any]:
        """Probe scores of features `x` (labelled rows) and `x_shift` (shifted rows): in catalogue, shifted,
        shifted sessions with unseen pages."""
        y, ys, u = self.y, self.y_shift, self.unseen
        evals = {"in_catalogue": (x[self.ev], y[self.ev]), "shifted": (x_shift, ys),
                 "shifted_unseen_pages": (x_shift[u], ys[u])}  # fmt: skip
        return probe_scores(x[self.fit], y[self.fit], evals)

    def embedding_scores(self, z: np.ndarray, z_shift: np.ndarray) -> dict[str, Any]:
        """`scores` plus k-means NMI of `z` against the true intents and the shifted/in-catalogue ratio."""
        from sklearn.cluster import KMeans
        from sklearn.metrics import normalized_mutual_info_score

        s = self.scores(z, z_shift)
        km = KMeans(n_clusters=len(set(self.y)), n_init=4, random_state=0).fit_predict(z)
        s["kmeans_nmi"] = round(float(normalized_mutual_info_score(self.y, km)), 4)
        s["shifted_over_in_catalogue"] = round(s["shifted"]["accuracy"] / s["in_catalogue"]["accuracy"], 3)
        return s

    def tfidf_scores(self) -> dict[str, Any]:
        """The reference probe: TF-IDF bag of pages, no learning."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(token_pattern=r"\S+", sublinear_tf=True)
        docs = pages_text(self.labelled)
        vec.fit([docs[i] for i in self.fit])
        return self.scores(vec.transform(docs), vec.transform(pages_text(self.shifted)))


def probe_world(work: Path, visitors: int, seed: int) -> ProbeWorld:
    """Simulate the training world and the shifted world under `work` and draw the probe split."""
    sessions, labelled = simulated_sessions(work, "world", visitors, seed, None)
    _, shifted = simulated_sessions(work, "shifted", max(visitors // 2, 500), seed + 1, "shifted")
    y = labelled.column("intent").to_numpy(zero_copy_only=False)
    perm = np.random.default_rng(seed).permutation(len(y))
    train_pages = set(pc.unique(pc.struct_field(pc.list_flatten(sessions.column("events")), "page")).to_pylist())
    unseen = np.array([any(e["page"] not in train_pages for e in evs) for evs in shifted.column("events").to_pylist()])
    return ProbeWorld(sessions, labelled, shifted, y, shifted.column("intent").to_numpy(zero_copy_only=False),
                      perm[: len(y) * 7 // 10], perm[len(y) * 7 // 10 :], unseen)  # fmt: skip


def run_sim(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    pw = probe_world(work, args.visitors, args.seed)
    sessions = pw.sessions
    result: dict[str, Any] = pw.summary()
    result["tfidf_pages"] = pw.tfidf_scores()

    text = TextVectors(MiniLMEncoder(), args.text_cache or work / "text")
    variants: dict[str, dict[str, Any]] = {
        "full": {},
        "no_text": {"use_text": False},
        "no_contrastive": {"contrastive_weight": 0.0},
        "no_masked": {"masked_weight": 0.0},
    }
    if not args.ablations:
        variants = {"full": {}}
    for name, change in variants.items():
        mcfg = EncoderConfig(use_text=change.get("use_text", True))
        tcfg = TrainConfig(epochs=args.epochs, seed=args.seed, max_minutes=args.max_minutes,
                           **{k: v for k, v in change.items() if k != "use_text"})  # fmt: skip
        t0 = time.perf_counter()
        res = train(sessions, work / f"bundle-{name}", mcfg, tcfg, text=text, progress=args.progress)
        emb = Embedder.from_bundle(work / f"bundle-{name}", device="cpu", text_cache=text.cache_dir)
        scores = pw.embedding_scores(emb.embed_sessions(pw.labelled), emb.embed_sessions(pw.shifted))
        scores["train"] = {"seconds": round(time.perf_counter() - t0, 1), "epochs": res.epochs, "stopped": res.stopped}
        result[f"encoder_{name}"] = scores
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["yoochoose", "sim", "all"], default="all")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--max-minutes", type=float, default=None, help="training budget per encoder")
    parser.add_argument("--visitors", type=int, default=4000, help="simulated visitors (sim part)")
    parser.add_argument("--no-ablations", dest="ablations", action="store_false")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text-cache", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=None, help="working directory (default: a temp dir)")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-quality-"))
    result: dict[str, Any] = {"loadavg": os.getloadavg()[0], "torch_threads": torch.get_num_threads()}
    if args.part in ("yoochoose", "all"):
        result["yoochoose"] = run_yoochoose(args, work)
    if args.part in ("sim", "all"):
        result["sim"] = run_sim(args, work)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
