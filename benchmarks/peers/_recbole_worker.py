"""Runs inside benchmarks/peers/.venvs/recbole (never imports clickintent): train one RecBole sequential model
on the next-click prefixes that `nextclick_recbole.py` wrote, under a wall-clock budget, and write its full-
ranking scores for the test prefixes.

Input (`--data`, .npz): for `train`, `valid`, `test`: `{split}_items` (flat item columns, -1 = unknown item),
`{split}_offsets` (prefix boundaries), `{split}_target` (next item column); `n_items`.
Items are the benchmark's columns 0..n_items-1; RecBole sees them as tokens "0".."n-1".

Output (`--out` dir): `scores_{tag}.npy` float32 [n_test, n_items] for each checkpoint tag (`budget`: weights
after `--budget-seconds` of training; `extended`: after `--extended-seconds`, or at early stopping), and
`log.json` (epochs, steps, validation MRR@20 per epoch, times). Training time counts optimizer steps and
the per-epoch validation (as RecBole's own `fit` does), not the scoring of the test prefixes.

Model selection uses only `valid` (held-out training sessions): at each checkpoint the better of the
current weights and the best epoch so far (validation MRR@20) is scored on `test`.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

# recbole 1.2.1 vs NumPy 2: Config.compatibility_settings() reads np.float_/np.complex_/np.unicode_, removed in
# NumPy 2.0. Give them back (as aliases of their NumPy 2 names) before recbole is imported; nothing is patched
# on disk.
for _old, _new in (("float_", "float64"), ("complex_", "complex128"), ("unicode_", "str_")):
    if _old not in np.__dict__:
        setattr(np, _old, getattr(np, _new))

import torch  # noqa: E402
from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.data.interaction import Interaction  # noqa: E402
from recbole.model.sequential_recommender import GRU4Rec, SASRec  # noqa: E402
from recbole.trainer import Trainer  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

MODELS = {"SASRec": SASRec, "GRU4Rec": GRU4Rec}
K = 20


def write_atomic(path: Path, items: np.ndarray, offsets: np.ndarray, target: np.ndarray, max_len: int) -> None:
    with path.open("w") as f:
        f.write("session_id:token\titem_id_list:token_seq\titem_id:token\n")
        for j in range(len(target)):
            seq = [str(c) for c in items[offsets[j] : offsets[j + 1]] if c >= 0][-max_len:]
            if target[j] >= 0 and seq:
                f.write(f"p{j}\t{' '.join(seq)}\t{target[j]}\n")


def mrr_hr(scores: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    ts = scores[np.arange(len(target)), target]
    rank = (scores > ts[:, None]).sum(1)
    top = rank < K
    return float(np.where(top, 1.0 / (rank + 1), 0.0).mean()), float(top.mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", choices=list(MODELS), required=True)
    ap.add_argument("--budget-seconds", type=float, required=True)
    ap.add_argument("--extended-seconds", type=float, required=True)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--max-len", type=int, default=20)
    ap.add_argument("--stopping-step", type=int, default=10, help="RecBole's default early-stopping patience")
    ap.add_argument("--seed", type=int, default=2020)
    args = ap.parse_args()
    d = np.load(args.data)
    n_items = int(d["n_items"])
    args.out.mkdir(parents=True, exist_ok=True)
    ds_dir = args.out / "data" / "yc"
    ds_dir.mkdir(parents=True, exist_ok=True)
    t_prep = time.perf_counter()
    for split, fname in (("train", "train"), ("valid", "valid"), ("valid", "test")):  # test file: unused
        write_atomic(ds_dir / f"yc.{fname}.inter", d[f"{split}_items"], d[f"{split}_offsets"], d[f"{split}_target"],
                     args.max_len)  # fmt: skip

    cfg = {
        "data_path": str(args.out / "data"), "checkpoint_dir": str(args.out / "saved"),
        "USER_ID_FIELD": "session_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": None,
        "load_col": {"inter": ["session_id", "item_id_list", "item_id"]}, "alias_of_item_id": ["item_id_list"],
        "benchmark_filename": ["train", "valid", "test"], "MAX_ITEM_LIST_LENGTH": args.max_len,
        "train_neg_sample_args": None, "loss_type": "CE", "train_batch_size": args.batch_size,
        "eval_args": {"order": "TO", "mode": "full", "group_by": "user"},
        "device": "cpu", "use_gpu": False, "show_progress": False, "seed": args.seed, "log_wandb": False,
    }  # fmt: skip
    config = Config(model=args.model, dataset="yc", config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    model = MODELS[args.model](config, train_data._dataset).to("cpu")
    trainer = Trainer(config, model)  # RecBole's optimizer (config learner / learning_rate / weight_decay)
    opt = trainer.optimizer
    tok = dataset.field2token_id["item_id"]
    rb_of_col = np.array([tok.get(str(c), 0) for c in range(n_items)])  # 0: RecBole padding (never trained)
    missing = int((rb_of_col == 0).sum())
    prep_s = time.perf_counter() - t_prep

    def batches(split: str):
        items, offsets = d[f"{split}_items"], d[f"{split}_offsets"]
        seqs = []
        for j in range(len(offsets) - 1):
            ids = [rb_of_col[c] for c in items[offsets[j] : offsets[j + 1]] if c >= 0 and rb_of_col[c] > 0]
            seqs.append(ids[-args.max_len :] or [0])  # a prefix of only unknown items: one padding slot
        for i in range(0, len(seqs), 1024):
            chunk = seqs[i : i + 1024]
            x = np.zeros((len(chunk), args.max_len), np.int64)
            for r, s in enumerate(chunk):
                x[r, : len(s)] = s
            yield Interaction({"item_id_list": torch.from_numpy(x),
                               "item_length": torch.tensor([len(s) for s in chunk])})  # fmt: skip

    def scores(split: str) -> np.ndarray:
        model.eval()
        out = []
        with torch.no_grad():
            for inter in batches(split):
                s = model.full_sort_predict(inter).numpy()[:, rb_of_col]
                s[:, rb_of_col == 0] = -np.inf
                out.append(s.astype(np.float32))
        model.train()
        return np.concatenate(out)

    def valid_mrr() -> float:
        t = d["valid_target"]
        keep = t >= 0
        return mrr_hr(scores("valid")[keep], t[keep])[0]

    log: dict = {"model": args.model, "prep_seconds": round(prep_s, 1), "items_missing_in_recbole": missing,
                 "train_prefixes": len(train_data._dataset), "config": {k: config[k] for k in (
                     "train_batch_size", "learning_rate", "learner", "weight_decay", "MAX_ITEM_LIST_LENGTH",
                     "loss_type", "hidden_size", "embedding_size", "n_layers", "n_heads", "dropout_prob",
                     "hidden_dropout_prob", "attn_dropout_prob", "clip_grad_norm", "seed") if k in config},
                 "epochs": [], "checkpoints": {}}  # fmt: skip
    best = (-1.0, None, -1)  # (valid MRR, state, epoch)
    since_best, steps, epoch = 0, 0, 0
    pending = [("budget", args.budget_seconds), ("extended", args.extended_seconds)]
    t0 = time.perf_counter()

    def checkpoint(tag: str) -> None:
        """Score the test prefixes; the time this takes is not counted as training time."""
        nonlocal best, t0
        t_pause = time.perf_counter()
        cur = valid_mrr()
        use_best = best[1] is not None and best[0] > cur
        state = copy.deepcopy(model.state_dict())
        if use_best:
            model.load_state_dict(best[1])
        np.save(args.out / f"scores_{tag}.npy", scores("test"))
        log["checkpoints"][tag] = {"train_seconds": round(t_pause - t0, 1), "steps": steps,
                                   "epochs_completed": epoch, "valid_mrr20_current": round(cur, 4),
                                   "weights": f"best epoch {best[2]}" if use_best else "current"}  # fmt: skip
        model.load_state_dict(state)
        if cur > best[0]:
            best = (cur, state, epoch)
        t0 += time.perf_counter() - t_pause
        print(f"[recbole {args.model}] checkpoint {tag}: {log['checkpoints'][tag]}", file=sys.stderr, flush=True)

    model.train()
    stopped = "time_budget"
    while pending:
        for inter in train_data:
            loss = model.calculate_loss(inter)
            opt.zero_grad()
            loss.backward()
            if config["clip_grad_norm"]:
                torch.nn.utils.clip_grad_norm_(model.parameters(), **config["clip_grad_norm"])
            opt.step()
            steps += 1
            while pending and time.perf_counter() - t0 >= pending[0][1]:
                checkpoint(pending.pop(0)[0])
            if not pending:
                break
        if not pending:
            break
        epoch += 1
        mrr = valid_mrr()
        seconds = round(time.perf_counter() - t0, 1)
        log["epochs"].append({"epoch": epoch, "seconds": seconds, "valid_mrr20": round(mrr, 4)})
        print(f"[recbole {args.model}] epoch {epoch}: {log['epochs'][-1]}", file=sys.stderr, flush=True)
        if mrr > best[0]:
            best, since_best = (mrr, copy.deepcopy(model.state_dict()), epoch), 0
        else:
            since_best += 1
        if since_best >= args.stopping_step:  # RecBole's early stopping: the remaining checkpoints now
            stopped = "early_stopping"
            while pending:
                checkpoint(pending.pop(0)[0])
    log["stopped"] = stopped
    log["best_epoch"] = best[2]
    (args.out / "log.json").write_text(json.dumps(log, indent=2))


if __name__ == "__main__":
    main()
