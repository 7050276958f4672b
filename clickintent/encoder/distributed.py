"""Data-parallel training of the session encoder on N processes (`clickintent train --nproc N`, issue 8).

`train_distributed` starts N worker processes (torch.multiprocessing spawn, rendezvous on a free port of
127.0.0.1), one model replica each wrapped in DistributedDataParallel: gloo on CPU, nccl with one GPU per
process on CUDA. Every process runs the ordinary loop of train.py with a `Replica`, which

- walks the same global batches and draws every random choice of a step for the whole batch from the same
  seeded generator (`train.draw_batch`: slices, masks, page dropout), then keeps a contiguous shard of the
  sessions, so the shards together see exactly what one process sees;
- scales its shard's loss so that DDP's gradient *average* equals the one-process gradient of the global
  batch: the masked-event loss is the shard's *sum* over masked events divided by the global count, and the
  contrastive loss is InfoNCE over the whole batch, with the other shards' embeddings all-gathered (as
  constants: each replica back-propagates through its own rows; the sum over replicas is the full gradient),
  both times N;
- agrees with the others on decisions (time budget, validation loss), and leaves writing checkpoints, the
  bundle and progress bars to rank 0.

So with the same data, seed and global batch size, N processes follow one process's loss curve up to float
rounding (tests/test_encoder_distributed.py), except for dropout (0 by default), whose masks are drawn per
shard. Under torchrun (`torchrun --nproc-per-node N --no-python clickintent train ...`) the same workers run
with torchrun's rendezvous instead of spawning their own.

What it leaves out: launching on several machines (torchrun does it; the checkpoint directory must then be
shared), sharding the model itself (FSDP: the encoder is small), gradient accumulation.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from clickintent.encoder.embed import resolve_device
from clickintent.encoder.features import EventBatch, EventFrame
from clickintent.encoder.model import EncoderConfig, SessionEncoder
from clickintent.encoder.objectives import contrastive_loss, masked_counts, masked_event_loss
from clickintent.encoder.text import MINILM_NAME, TextVectors, default_cache_dir, text_encoder
from clickintent.encoder.train import TrainConfig, TrainResult, draw_batch, train

T = TypeVar("T")
StepFn = Callable[[np.ndarray, np.random.Generator], tuple[torch.Tensor, dict[str, float]]]


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """[lo, hi) of rank's contiguous share of n items; sizes differ by at most one."""
    return rank * n // world, (rank + 1) * n // world


def _gather_views(z: torch.Tensor, sizes: list[int], rank: int, n_views: int) -> torch.Tensor:
    """Every rank's z ([n_views * b_r, out], view-major) as the global view-major [n_views * B, out]. Other
    ranks' rows arrive as constants; only this rank's rows keep their gradient."""
    top = n_views * max(sizes)
    buf = z.new_zeros((top, z.shape[1]))  # all_gather wants equal sizes: pad, then cut
    buf[: z.shape[0]] = z.detach()
    got = [torch.empty_like(buf) for _ in sizes]
    dist.all_gather(got, buf)
    parts = [g[: n_views * s] for g, s in zip(got, sizes, strict=True)]
    parts[rank] = z
    return torch.cat([p[v * s : (v + 1) * s] for v in range(n_views) for p, s in zip(parts, sizes, strict=True)])


class ShardLoss(nn.Module):
    """The loss of one rank's shard of a global batch, scaled for DDP's gradient average (see the module
    docstring). Holds the encoder, so DDP sees every parameter used inside one forward."""

    def __init__(self, encoder: SessionEncoder, cfg: TrainConfig, rank: int, world: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.cfg = cfg
        self.rank, self.world = rank, world

    def forward(
        self, batch: EventBatch, inputs: EventBatch, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """(loss to back-propagate, loss parts of the whole global batch for logging)."""
        cfg, N = self.cfg, self.world
        n_views = 2 if cfg.contrastive_weight > 0 else 1
        B = batch.page.shape[0] // n_views  # sessions in the global batch
        sizes = [hi - lo for lo, hi in (shard_bounds(B, r, N) for r in range(N))]
        lo, hi = shard_bounds(B, self.rank, N)
        real = float(hi > lo)  # 0: fewer sessions than replicas; a stand-in row, weighted 0, keeps this
        lo, hi = (lo, hi) if real else (0, 1)  # replica in DDP's backward
        rows = torch.cat([torch.arange(lo, hi) + v * B for v in range(n_views)]).to(batch.page.device)
        mine = batch.take(rows)
        m = mask[rows] if mask is not None else None
        z, h = self.encoder(inputs.take(rows), m)  # z [n_views * b, out], h [n_views * b, T, D]
        loss = z.new_zeros(())
        parts: dict[str, float] = {}
        if mask is not None and m is not None and h is not None:
            # sums over this shard's masked events / counts over the global batch's
            page, etype = masked_event_loss(self.encoder, h, mine, m, masked_counts(batch, mask))
            page, etype = real * page, real * etype
            loss = loss + N * cfg.masked_weight * (page + etype)
            shares = torch.stack([page.detach(), etype.detach()]).float()
            dist.all_reduce(shares)  # the shards' shares add up to the global batch's means
            parts.update(page=shares[0].item(), type=shares[1].item())
        if n_views == 2:
            con = contrastive_loss(_gather_views(z if real else z[:0], sizes, self.rank, 2), 2, cfg.temperature)
            loss = loss + N * cfg.contrastive_weight * con + (1 - real) * 0.0 * z.sum()
            parts["contrastive"] = con.item()
        masked = parts.get("page", 0.0) + parts.get("type", 0.0)
        parts["loss"] = cfg.masked_weight * masked + cfg.contrastive_weight * parts.get("contrastive", 0.0)
        return loss, parts


@dataclass
class Replica:
    """One process of a data-parallel run: its rank, the world size and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (filling shared caches); the others wait, then run it."""
        if not self.is_main:
            dist.barrier()
        yield
        if self.is_main:
            dist.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on any."""
        t = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def from_main(self, obj: T) -> T:
        """Rank 0's `obj` on every rank."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def step_fn(self, model: SessionEncoder, frame: EventFrame, cfg: TrainConfig) -> StepFn:
        """The training step of train.py for this rank: draw the global batch, compute this shard's loss."""
        both = cfg.masked_weight > 0 and cfg.contrastive_weight > 0  # else some heads get no gradient
        ddp = DistributedDataParallel(
            ShardLoss(model, cfg, self.rank, self.world),
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=not both,
        )

        def step(rows: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
            batch, inputs, mask = draw_batch(frame, rows, cfg, rng, self.device)
            if self.rank:  # the loop seeded dropout for this step; each shard gets its own masks
                torch.manual_seed(torch.initial_seed() + self.rank)
            loss, parts = ddp(batch, inputs, mask)
            return loss, parts

        return step


# --- launching ---------------------------------------------------------------------------------------


@dataclass
class _Job:
    """What every worker needs to call train.train (picklable: no open files or loaded models)."""

    sessions: pa.Table | str | Path
    out: Path
    model_config: EncoderConfig | None
    config: TrainConfig
    text_model: str
    text_cache: Path
    checkpoint_dir: Path | None
    resume: bool
    progress: bool
    result: Path  # rank 0 writes its TrainResult here as JSON


def launched_by_torchrun() -> bool:
    """True inside a process that torchrun (torch.distributed.run) started."""
    return "TORCHELASTIC_RUN_ID" in os.environ or {"RANK", "LOCAL_RANK", "WORLD_SIZE"} <= set(os.environ)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_worker(rank: int, world: int, local_rank: int, init_method: str, job: _Job) -> TrainResult:
    device = resolve_device(job.config.device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if device.type == "cuda":  # device_id: NCCL binds this process to its GPU now, not at the first collective
        dist.init_process_group("nccl", init_method=init_method, rank=rank, world_size=world, device_id=device)
    else:
        dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        text = TextVectors(text_encoder(job.text_model, device=device.type), job.text_cache)
        result = train(
            job.sessions, job.out, job.model_config, job.config, text=text, checkpoint_dir=job.checkpoint_dir,
            resume=job.resume, progress=job.progress, replica=Replica(rank, world, device),
        )  # fmt: skip
        # Tear down together: rank 0 still writes the bundle when the others finish, and a rank whose gloo
        # pairs close while its peer is busy, or whose DDP reducer (still holding gloo work) is collected
        # only at interpreter exit, was seen to abort ("terminate called without an active exception").
        gc.collect()
        dist.barrier()
        return result
    finally:
        dist.destroy_process_group()


def _spawned(rank: int, world: int, port: int, job: _Job) -> None:
    res = _run_worker(rank, world, rank, f"tcp://127.0.0.1:{port}", job)
    if rank == 0:
        job.result.write_text(json.dumps({**asdict(res), "bundle": str(res.bundle)}))


def _error_line(exc: BaseException) -> str:
    """The last line of a worker's traceback ("ValueError: ..."), which says what went wrong."""
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else repr(exc)


def train_distributed(
    sessions: pa.Table | str | Path,
    out: str | Path,
    model_config: EncoderConfig | None = None,
    config: TrainConfig | None = None,
    *,
    nproc: int = 2,
    text: TextVectors | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
) -> TrainResult | None:
    """`train.train` on `nproc` data-parallel processes; returns rank 0's result.

    On CPU each process gets max(1, cores // nproc) torch threads unless `config.threads` says otherwise;
    on CUDA each process takes one GPU (nproc <= GPUs). A worker's error is raised here as RuntimeError with
    the worker's message. Inside torchrun this process is one of torchrun's workers instead (nproc must be
    1: torchrun's --nproc-per-node counts the processes), and ranks other than 0 return None.
    """
    cfg = config or TrainConfig()
    text_model = text.name if text else MINILM_NAME  # workers open their own text cache
    text_cache = text.cache_dir if text else default_cache_dir()
    device = resolve_device(cfg.device)
    torchrun = launched_by_torchrun()
    if torchrun and nproc != 1:
        raise ValueError("under torchrun leave --nproc at 1: torchrun's --nproc-per-node sets the processes")
    world = int(os.environ["WORLD_SIZE"]) if torchrun else nproc
    if world < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    if device.type == "cuda" and not torchrun and nproc > torch.cuda.device_count():
        raise ValueError(f"--nproc {nproc} on CUDA needs {nproc} GPUs; torch sees {torch.cuda.device_count()}")
    if device.type == "cpu" and cfg.threads is None:  # share this machine's cores among its processes
        here = int(os.environ.get("LOCAL_WORLD_SIZE", world)) if torchrun else nproc
        cfg = TrainConfig(**{**asdict(cfg), "threads": max(1, (os.cpu_count() or 1) // here)})
    job = _Job(
        sessions if isinstance(sessions, pa.Table) else Path(sessions), Path(out), model_config, cfg, text_model,
        text_cache, Path(checkpoint_dir) if checkpoint_dir else None, resume, progress, Path(),
    )  # fmt: skip
    if torchrun:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
        res = _run_worker(rank, world, local_rank, "env://", job)
        return res if rank == 0 else None

    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="clickintent-ddp-") as tmp:
        job.result = Path(tmp) / "result.json"
        try:
            mp.spawn(_spawned, args=(nproc, free_port(), job), nprocs=nproc, join=True)
        except mp.ProcessRaisedException as exc:
            raise RuntimeError(f"a training process failed: {_error_line(exc)}") from exc
        except mp.ProcessExitedException as exc:
            raise RuntimeError(f"a training process died: {exc}") from exc
        data: dict[str, Any] = json.loads(job.result.read_text())
    return TrainResult(**{**data, "bundle": Path(data["bundle"])})
