"""Self-supervised training of the session encoder: one readable loop, written to a bundle.

`train(sessions, out)` splits sessions into train/validation (by seed), builds the vocabulary from the
training split only, featurizes everything once (text vectors through the on-disk cache), then runs
AdamW with linear warm-up and cosine decay over masked-event + contrastive losses. After each epoch it
measures the validation loss (with fixed masks and slices, so epochs compare), keeps the best weights,
stops early after `patience` epochs without improvement, and checkpoints (safetensors + JSON) so an
interrupted run resumes where it stopped. A run is deterministic for a seed on one device: every step
draws its batch order, slices, masks and dropout from seeds derived from (seed, epoch, step), which also
makes a resumed run identical to an uninterrupted one. `max_minutes` caps the wall time. It trains on CUDA
when there is one (`device="auto"`), optionally under bf16 autocast (`amp`, CUDA only).

Data-parallel training on several processes or GPUs is distributed.py: it runs this same loop in every
process with a `Replica`, which shards each global batch; the loop only asks it who writes (rank 0) and to
agree on decisions (stop, validation loss). What it leaves out: hyper-parameter search.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from clickintent.encoder.checkpoint import load_checkpoint, save_checkpoint
from clickintent.encoder.embed import resolve_device
from clickintent.encoder.features import EventBatch, EventFrame, Featurizer, Vocab, collate
from clickintent.encoder.io import save_encoder
from clickintent.encoder.model import EncoderConfig, SessionEncoder
from clickintent.encoder.objectives import (
    contrastive_loss,
    drop_pages,
    mask_events,
    masked_event_loss,
    sample_subsequences,
)
from clickintent.encoder.text import MiniLMEncoder, TextVectors

if TYPE_CHECKING:
    from clickintent.encoder.distributed import Replica

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 6  # passes over the training split (early stopping may end sooner)
    batch_size: int = 128  # sessions per step (each gives two slices when contrastive is on)
    lr: float = 2e-3  # peak learning rate
    min_lr: float = 1e-4  # floor of the cosine decay
    warmup_steps: int = 100  # linear warm-up
    weight_decay: float = 0.01  # AdamW, on matrices only
    grad_clip: float = 1.0  # max gradient norm
    val_fraction: float = 0.05  # sessions held out for the validation loss
    patience: int = 2  # epochs without validation improvement before stopping
    masked_weight: float = 1.0  # weight of the masked-event loss; 0 switches it off
    contrastive_weight: float = 1.0  # weight of the contrastive loss; 0 switches it off
    mask_rate: float = 0.2  # share of events masked
    page_dropout: float = 0.1  # share of known pages shown as their OOV bucket (teaches unseen pages)
    temperature: float = 0.1  # InfoNCE temperature
    min_view_fraction: float = 0.3  # shortest contrastive slice, as a share of the session
    min_page_count: int = 2  # pages seen fewer times in training share OOV buckets
    max_pages: int = 50_000  # largest page vocabulary
    n_page_buckets: int = 1024  # OOV buckets for pages
    seed: int = 0
    max_minutes: float | None = None  # wall-clock budget; the best weights so far are kept
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # torch CPU threads (None: torch's default)
    amp: bool = False  # bf16 autocast for the training steps on CUDA (ignored on CPU)

    def fingerprint_fields(self) -> dict[str, Any]:
        """Fields that must match for a checkpoint to be resumed."""
        skip = {"max_minutes", "device", "threads", "amp"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


@dataclass
class TrainResult:
    bundle: Path
    model_version: str
    stopped: str  # completed | early_stopping | time_budget
    epochs: int  # epochs completed
    steps: int
    best_val_loss: float
    seconds: float
    sessions_per_second: float
    history: list[dict[str, float]] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)  # training loss of each step this run took


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to cfg.min_lr at `total` steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def make_optimizer(model: SessionEncoder, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW at `cfg.lr` with weight decay on matrices only (not biases, norms), as `train` uses it."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98))


def draw_batch(
    frame: EventFrame,
    rows: np.ndarray,
    cfg: TrainConfig,
    rng: np.random.Generator,
    device: torch.device,
    train: bool = True,
) -> tuple[EventBatch, EventBatch, torch.Tensor | None]:
    """Every random choice of a step, made for the whole batch `rows`: (batch with the true pages, model
    inputs after page dropout, event mask [B', T] or None). With contrastive on, B' = 2B slices, view-major.
    Distributed replicas each draw the whole batch like this and keep their shard of it, so N processes see
    the very slices and masks that one process sees."""
    if cfg.contrastive_weight > 0:  # two random slices of every session, view-major: [slices of view 0; view 1]
        vrows, starts, lens = sample_subsequences(frame.lengths[rows], rng, 2, cfg.min_view_fraction)
        batch = collate(frame, rows[vrows], starts, lens).to(device)
    else:
        batch = collate(frame, rows).to(device)
    mask = None
    if cfg.masked_weight > 0:
        mask = torch.from_numpy(mask_events(batch.lengths.cpu().numpy(), cfg.mask_rate, rng)).to(device)
    inputs = drop_pages(batch, cfg.page_dropout, rng) if train else batch
    return batch, inputs, mask


def batch_loss(
    model: SessionEncoder,
    frame: EventFrame,
    rows: np.ndarray,
    cfg: TrainConfig,
    rng: np.random.Generator,
    device: torch.device,
    train: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted loss for sessions `rows` of `frame`, and its parts (for logging)."""
    contrastive = cfg.contrastive_weight > 0
    batch, inputs, mask = draw_batch(frame, rows, cfg, rng, device, train)
    z, h = model(inputs, mask)
    loss = z.new_zeros(())
    parts: dict[str, float] = {}
    if mask is not None and h is not None:
        page, etype = masked_event_loss(model, h, batch, mask)  # targets: the true pages
        loss = loss + cfg.masked_weight * (page + etype)
        parts.update(page=page.item(), type=etype.item())
    if contrastive:
        con = contrastive_loss(z, 2, cfg.temperature)
        loss = loss + cfg.contrastive_weight * con
        parts["contrastive"] = con.item()
    parts["loss"] = loss.item()
    return loss, parts


def epoch_batches(
    rows: np.ndarray, lengths: np.ndarray, batch_size: int, rng: np.random.Generator, pool: int = 50
) -> list[np.ndarray]:
    """Shuffled batches of similar-length sessions: shuffle, sort each pool of `pool` batches by length,
    cut, shuffle the batches. Padding to the longest session then wastes little (on YOOCHOOSE, random
    batches almost always held one 64-event session, 16x the mean length)."""
    order = rng.permutation(rows)
    out: list[np.ndarray] = []
    for i in range(0, len(order), batch_size * pool):
        part = order[i : i + batch_size * pool]
        part = part[np.argsort(lengths[part], kind="stable")]
        out.extend(part[j : j + batch_size] for j in range(0, len(part), batch_size))
    return [out[i] for i in rng.permutation(len(out))]


@torch.no_grad()
def validation_loss(
    model: SessionEncoder, frame: EventFrame, rows: np.ndarray, cfg: TrainConfig, device: torch.device
) -> dict[str, float]:
    """Mean loss parts over `rows` with fixed slices and masks (comparable across epochs)."""
    model.eval()
    totals: dict[str, float] = {}
    n = 0
    rows = rows[np.argsort(frame.lengths[rows], kind="stable")]  # fixed, similar-length batches
    for i in range(0, len(rows), cfg.batch_size):
        part = rows[i : i + cfg.batch_size]
        rng = np.random.default_rng([cfg.seed, 991, i])
        _, parts = batch_loss(model, frame, part, cfg, rng, device, train=False)
        for k, v in parts.items():
            totals[k] = totals.get(k, 0.0) + v * len(part)
        n += len(part)
    model.train()
    return {k: v / max(n, 1) for k, v in totals.items()}


def _fingerprint(model_cfg: EncoderConfig, cfg: TrainConfig, vocab: Vocab, n: int) -> str:
    blob = json.dumps(
        {"model": model_cfg.to_json(), "train": cfg.fingerprint_fields(), "vocab": vocab.to_json(), "n": n},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --- the loop ----------------------------------------------------------------------------------------


def read_sessions(sessions: pa.Table | str | Path) -> pa.Table:
    if isinstance(sessions, pa.Table):
        return sessions
    return pq.read_table(str(sessions), columns=["session_id", "events"])


def split_rows(n: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows), a seeded random split."""
    perm = np.random.default_rng([cfg.seed, 1]).permutation(n)
    n_val = min(n - 1, max(1, round(n * cfg.val_fraction))) if cfg.val_fraction > 0 and n > 1 else 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def train(
    sessions: pa.Table | str | Path,
    out: str | Path,
    model_config: EncoderConfig | None = None,
    config: TrainConfig | None = None,
    *,
    text: TextVectors | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    replica: Replica | None = None,
) -> TrainResult:
    """Train an encoder on `sessions` (a table or sessions.parquet) and write it to the bundle `out`.

    Checkpoints go to `checkpoint_dir` (default: `<out>.ckpt` beside the bundle); with `resume` a
    matching checkpoint there is continued, and a checkpoint from a different config is refused.
    `replica` is set by distributed.py in each of its processes; only rank 0 writes and shows progress.
    """
    from tqdm.auto import tqdm

    cfg = config or TrainConfig()
    if cfg.masked_weight <= 0 and cfg.contrastive_weight <= 0:
        raise ValueError("switch on at least one objective (masked_weight or contrastive_weight > 0)")
    t_start = time.perf_counter()
    device = replica.device if replica else resolve_device(cfg.device)
    main = replica is None or replica.is_main
    amp = cfg.amp and device.type == "cuda"
    if cfg.amp and not amp:
        log.warning("amp (bf16 autocast) needs CUDA; training in float32 on %s", device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    text = text or TextVectors(MiniLMEncoder(device=device.type))
    out = Path(out)
    ckpt = Path(checkpoint_dir) if checkpoint_dir else out.with_name(out.name + ".ckpt")

    table = read_sessions(sessions)
    train_rows, val_rows = split_rows(len(table), cfg)
    if len(train_rows) == 0:
        raise ValueError("no sessions to train on")
    vocab = Vocab.build(
        table.take(pa.array(train_rows)),
        min_page_count=cfg.min_page_count,
        max_pages=cfg.max_pages,
        n_page_buckets=cfg.n_page_buckets,
        text_model=text.name,
        text_dim=text.dim,
    )
    if model_config is not None:  # featurization sizes live in the vocab; take them from the config
        vocab.n_url_buckets, vocab.n_time_buckets = model_config.n_url_buckets, model_config.n_time_buckets
        vocab.max_events = model_config.max_events
    mcfg = (model_config or EncoderConfig()).for_vocab(vocab)
    with replica.main_first() if replica else nullcontext():  # rank 0 fills the text cache, the others read it
        frame = Featurizer(vocab, text).frame(table)
    log.info(
        "featurized %d sessions (%d events) in %.1fs", len(frame), frame.offsets[-1], time.perf_counter() - t_start
    )

    torch.manual_seed(cfg.seed)
    model = SessionEncoder(mcfg).to(device)
    opt = make_optimizer(model, cfg)
    steps_per_epoch = len(epoch_batches(train_rows, frame.lengths, cfg.batch_size, np.random.default_rng(0)))
    total_steps = cfg.epochs * steps_per_epoch
    fp = _fingerprint(mcfg, cfg, vocab, len(table))

    epoch, step_in_epoch, global_step = 0, 0, 0
    best_val, bad_epochs = math.inf, 0
    best: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = []
    stopped = "completed"
    if resume and (ckpt / "state.json").exists():
        state, best = load_checkpoint(ckpt, model, opt, device)
        if state.get("fingerprint") != fp:
            raise RuntimeError(f"checkpoint {ckpt} was made with other data or settings; delete it or pass --no-resume")
        epoch, step_in_epoch, global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
        best_val, bad_epochs, history = state["best_val"], state["bad_epochs"], state["history"]
        log.info("resuming from %s at epoch %d step %d", ckpt, epoch, step_in_epoch)

    def local_step(rows: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        return batch_loss(model, frame, rows, cfg, rng, device)

    step = replica.step_fn(model, frame, cfg) if replica else local_step

    def checkpoint() -> None:
        if not main:
            return
        save_checkpoint(ckpt, model, opt, best, {
            "fingerprint": fp, "epoch": epoch, "step_in_epoch": step_in_epoch, "global_step": global_step,
            "best_val": best_val, "bad_epochs": bad_epochs, "history": history,
        })  # fmt: skip

    def end_epoch(train_loss: float) -> None:
        nonlocal best_val, bad_epochs, best
        val = validation_loss(model, frame, val_rows, cfg, device) if len(val_rows) else {"loss": train_loss}
        if replica:  # every rank must take the same early-stopping decision
            val = replica.from_main(val)
        history.append({"epoch": epoch, "train_loss": train_loss, **{f"val_{k}": v for k, v in val.items()}})
        if val["loss"] < best_val - 1e-4:
            best_val, bad_epochs = val["loss"], 0
            best = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1

    budget = cfg.max_minutes * 60 if cfg.max_minutes else math.inf
    t_loop, seen = time.perf_counter(), 0
    step_losses: list[float] = []
    model.train()
    while epoch < cfg.epochs and stopped == "completed" and bad_epochs < cfg.patience:
        batches = epoch_batches(train_rows, frame.lengths, cfg.batch_size, np.random.default_rng([cfg.seed, epoch, 7]))
        bar = tqdm(
            total=steps_per_epoch,
            initial=step_in_epoch,
            disable=not (progress and main),
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
        )
        run_loss, n_loss = 0.0, 0
        while step_in_epoch < steps_per_epoch:
            rows = batches[step_in_epoch]
            rng = np.random.default_rng([cfg.seed, epoch, step_in_epoch])
            torch.manual_seed(int(rng.integers(2**62)))  # dropout
            for g in opt.param_groups:
                g["lr"] = lr_at(global_step, total_steps, cfg)
            with torch.autocast(device.type, torch.bfloat16, enabled=amp):
                loss, parts = step(rows, rng)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step_in_epoch += 1
            global_step += 1
            seen += len(rows)
            run_loss += parts["loss"]
            n_loss += 1
            step_losses.append(parts["loss"])
            rate = seen / (time.perf_counter() - t_loop)
            bar.set_postfix(loss=f"{parts['loss']:.3f}", sess_s=f"{rate:.0f}", refresh=False)
            bar.update()
            over = time.perf_counter() - t_start > budget
            if replica and budget < math.inf:  # stop together: rank 0 may be slower (it writes)
                over = replica.any(over)
            if over:
                stopped = "time_budget"
                break
        bar.close()
        if stopped == "time_budget":  # mid-epoch: checkpoint to resume here; the bundle gets the best
            checkpoint()  # finished epoch's weights, or the current ones if none finished
            break
        end_epoch(run_loss / max(n_loss, 1))
        epoch, step_in_epoch = epoch + 1, 0
        checkpoint()
        log.info("epoch %d: %s", epoch, history[-1])
    if bad_epochs >= cfg.patience and stopped == "completed":
        stopped = "early_stopping"

    seconds = time.perf_counter() - t_start
    rate = seen / max(time.perf_counter() - t_loop, 1e-9)
    result = TrainResult(out, "", stopped, epoch, global_step, best_val, seconds, rate, history, step_losses)
    if not main:  # rank 0 writes the bundle
        return result
    if best is not None:
        model.load_state_dict(best)
    model.eval()
    summary = {
        "stopped": stopped, "epochs": epoch, "steps": global_step, "best_val_loss": best_val,
        "train_sessions": len(train_rows), "val_sessions": len(val_rows), "seconds": round(seconds, 1),
        "train_config": asdict(cfg), "history": history,
    }  # fmt: skip
    bundle = save_encoder(out, model.cpu(), vocab, summary)
    result.model_version = str(bundle.component("encoder")["version"])
    return result
