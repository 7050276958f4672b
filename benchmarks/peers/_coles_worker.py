"""Runs inside benchmarks/peers/.venvs/lifestream (never imports clickintent): train pytorch-lifestream's CoLES
on the event sequences that `coles_lifestream.py` wrote, under a wall-clock budget, and embed every sequence.

Input (`--data`, .npz): for each set S in `--sets` (the first is trained on): `S_offsets` and one flat array
per feature: categorical `S_page`, `S_event_type`, `S_device`, `S_referrer`, `S_has_query` (int, 0 = padding,
1 = unknown), numeric `S_log_dwell`, `S_log_gap`, `S_event_time`; vocabulary sizes `n_<feature>`.
Output (`--out` dir): `emb_S.npy` float32 [n_sequences, hidden] (the sequence encoder's output, as
`ptls` inference returns it) and `log.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from ptls.data_load.datasets import MemoryMapDataset, inference_data_loader
from ptls.frames import PtlsDataModule
from ptls.frames.coles import ColesDataset, CoLESModule
from ptls.frames.coles.split_strategy import SampleSlices
from ptls.nn import RnnSeqEncoder, TrxEncoder

CATEGORICAL = {"page": 32, "event_type": 4, "device": 2, "referrer": 4, "has_query": 2}  # feature: emb width
NUMERIC = ["log_dwell", "log_gap"]


def records(d: np.lib.npyio.NpzFile, s: str) -> list[dict[str, torch.Tensor]]:
    off = d[f"{s}_offsets"]
    cols = {f: d[f"{s}_{f}"] for f in [*CATEGORICAL, *NUMERIC, "event_time"]}
    out = []
    for j in range(len(off) - 1):
        a, b = off[j], off[j + 1]
        r = {f: torch.from_numpy(cols[f][a:b].astype(np.int64)) for f in CATEGORICAL}
        r |= {f: torch.from_numpy(cols[f][a:b].astype(np.float32)) for f in [*NUMERIC, "event_time"]}
        out.append(r)
    return out


class Progress(pl.Callback):
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        loss = trainer.callback_metrics.get("loss")
        print(f"[coles] epoch {trainer.current_epoch + 1} done at {time.perf_counter() - self.t0:.0f}s, "
              f"steps {trainer.global_step}, loss {float(loss) if loss is not None else float('nan'):.4f}",
              file=sys.stderr, flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sets", nargs="+", required=True, help="sets in the npz; the first is the training set")
    ap.add_argument("--budget-seconds", type=float, required=True)
    ap.add_argument("--max-epochs", type=int, default=1000)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--split-count", type=int, default=5)
    ap.add_argument("--cnt-min", type=int, default=2)
    ap.add_argument("--cnt-max", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    pl.seed_everything(args.seed, verbose=False)
    d = np.load(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    data = {s: records(d, s) for s in args.sets}
    trx = TrxEncoder(
        embeddings={f: {"in": int(d[f"n_{f}"]), "out": w} for f, w in CATEGORICAL.items()},
        numeric_values={f: "identity" for f in NUMERIC},
        embeddings_noise=0.003,
    )
    seq_encoder = RnnSeqEncoder(trx_encoder=trx, hidden_size=args.hidden, type="gru")
    module = CoLESModule(
        seq_encoder=seq_encoder,
        optimizer_partial=partial(torch.optim.Adam, lr=args.lr, weight_decay=0.0),
        lr_scheduler_partial=partial(torch.optim.lr_scheduler.StepLR, step_size=30, gamma=0.9),
    )
    train_set = ColesDataset(
        MemoryMapDataset(data=data[args.sets[0]]),
        splitter=SampleSlices(split_count=args.split_count, cnt_min=args.cnt_min, cnt_max=args.cnt_max),
    )
    dm = PtlsDataModule(train_data=train_set, train_num_workers=0, train_batch_size=args.batch_size)
    trainer = pl.Trainer(
        max_epochs=args.max_epochs, max_time={"seconds": round(args.budget_seconds)}, accelerator="cpu",
        enable_progress_bar=False, logger=False, enable_checkpointing=False, enable_model_summary=False,
        callbacks=[Progress()],
    )  # fmt: skip
    t0 = time.perf_counter()
    trainer.fit(module, dm)
    train_s = time.perf_counter() - t0
    log = {
        "train_seconds": round(train_s, 1), "epochs": trainer.current_epoch, "steps": trainer.global_step,
        "params": sum(p.numel() for p in seq_encoder.parameters()), "hidden": args.hidden,
        "batch_size": args.batch_size, "split": {"split_count": args.split_count, "cnt_min": args.cnt_min,
                                                 "cnt_max": args.cnt_max}, "lr": args.lr,
        "features": {"categorical": CATEGORICAL, "numeric": NUMERIC},
        "sequences": {s: len(v) for s, v in data.items()},
    }  # fmt: skip
    t1 = time.perf_counter()
    module.eval()
    for s, recs in data.items():
        emb = torch.vstack(trainer.predict(module, inference_data_loader(recs, num_workers=0, batch_size=512)))
        np.save(args.out / f"emb_{s}.npy", emb.numpy().astype(np.float32))
    log["embed_seconds"] = round(time.perf_counter() - t1, 1)
    (args.out / "log.json").write_text(json.dumps(log, indent=2))
    print(f"[coles] {json.dumps(log)}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
