"""GPU vs CPU speed of the session encoder on one machine (issue 8): training steps and embedding.

Meant for one run on a lent GPU machine through benchmarks/gpu/run.sh; on a machine without CUDA every
CUDA measurement says "CUDA not available" and the rest still runs. Phases, each bounded in steps and in
seconds, each written to OUT/bench_gpu.json as soon as it ends (with its error, if it fails, so one broken
phase costs only itself), then OUT/bench_gpu.txt, a one-screen summary:

1. data: simulate a world (clickintent.sim), ingest it, sessionize it (DuckDB).
2. featurize: vocabulary and EventFrame of all sessions (text vectors: hashing-384 by default, since the
   MiniLM package is too large to carry; the encoder's speed does not depend on which text vectors it
   reads, they are cached per string either way).
3. train_steps: a fixed number of training steps, exactly as train.train takes them (train.batch_loss,
   AdamW, gradient clipping), on cpu, cuda and cuda with bf16 autocast, at two batch sizes; sessions/s after
   a few warm-up steps.
4. train_e2e: train.train itself (featurize, steps, validation, checkpoint, bundle) for one bounded epoch on
   a subset, on CUDA when there is one; then distributed.train_distributed with 1 process (nccl on CUDA,
   gloo on CPU) on the same data: its loss curve must follow the plain run's.
5. embed: Embedder.embed_frame (model only) and Embedder.embed_sessions (featurize + model) on cpu and cuda.
6. ddp_cpu: on CPU, 2 processes (gloo, cores/2 threads each) vs 1 process, one short epoch: wall time and
   loss agreement (the machine's other cores sit idle on a 2-core box, not on a 16-core one).

    python -m benchmarks.bench_gpu --out out/gpu                       # GPU machine defaults (~1M events)
    python -m benchmarks.bench_gpu --out /tmp/g --visitors 300 --days 7 --budget-s 120   # tiny, on CPU
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (clickintent/encoder/__init__.py)

import argparse
import copy
import json
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from clickintent.encoder.embed import Embedder
from clickintent.encoder.features import EventFrame, Featurizer, Vocab
from clickintent.encoder.model import EncoderConfig, SessionEncoder
from clickintent.encoder.text import HASHING_NAME, MINILM_NAME, TextVectors, text_encoder
from clickintent.encoder.train import TrainConfig, batch_loss, epoch_batches, make_optimizer

CUDA = torch.cuda.is_available()
NO_CUDA = "CUDA not available"


class Bench:
    """Phases under one wall-clock budget; results saved after every phase."""

    def __init__(self, out: Path, budget_s: float) -> None:
        self.out = out
        self.deadline = time.perf_counter() + budget_s
        self.results: dict[str, Any] = {"env": env_info(), "phases": {}}

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def phase(self, name: str, fn: Callable[[], Any], need_s: float = 5.0) -> Any:
        """Run fn() unless fewer than need_s seconds are left; record its result or its error."""
        if self.left() < need_s:
            got: Any = {"skipped": f"budget: {self.left():.0f}s left, phase needs ~{need_s:.0f}s"}
        else:
            t = time.perf_counter()
            print(f"[bench_gpu] {name} ({self.left():.0f}s left)", flush=True)
            try:
                got = fn()
            except Exception as exc:  # a benchmark phase may fail on a new machine: record it, go on
                got = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
            if isinstance(got, dict):
                got.setdefault("phase_seconds", round(time.perf_counter() - t, 2))
        self.results["phases"][name] = got
        self.save()
        return got

    def save(self) -> None:
        tmp = self.out / ".bench_gpu.json.tmp"
        tmp.write_text(json.dumps(self.results, indent=2, default=str))
        os.replace(tmp, self.out / "bench_gpu.json")


def env_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0], "torch": torch.__version__, "cuda_available": CUDA,
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
    }  # fmt: skip
    if CUDA:
        p = torch.cuda.get_device_properties(0)
        info |= {"gpu": p.name, "gpu_memory_gib": round(p.total_memory / 2**30, 1), "cuda": torch.version.cuda,
                 "gpus": torch.cuda.device_count(), "bf16": torch.cuda.is_bf16_supported()}  # fmt: skip
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- phases ------------------------------------------------------------------------------------------


def make_data(work: Path, visitors: int, days: int) -> dict[str, Any]:
    from clickintent.ingest import ingest
    from clickintent.sessionize import sessionize
    from clickintent.sim.generate import simulate

    t0 = time.perf_counter()
    sim = simulate(work / "sim", visitors=visitors, days=days, seed=0)
    t1 = time.perf_counter()
    rep = ingest(work / "sim" / "events.parquet", work / "data")
    t2 = time.perf_counter()
    ses = sessionize(work / "data" / "events.parquet", work / "data" / "sessions.parquet")
    t3 = time.perf_counter()
    return {
        "visitors": visitors, "days": days, "events": rep.rows_out, "sessions": ses.sessions,
        "simulate_s": round(t1 - t0, 2), "ingest_s": round(t2 - t1, 2), "sessionize_s": round(t3 - t2, 2),
        "sim_summary": sim.counts(),
    }  # fmt: skip


def featurize(table: pa.Table, text: TextVectors) -> tuple[Vocab, EventFrame, dict[str, Any]]:
    t = time.perf_counter()
    vocab = Vocab.build(table, text_model=text.name, text_dim=text.dim)
    frame = Featurizer(vocab, text).frame(table)
    s = time.perf_counter() - t
    info = {"sessions": len(frame), "events": int(frame.offsets[-1]), "seconds": round(s, 2),
            "sessions_per_s": round(len(frame) / s), "pages": len(vocab.pages), "text_model": text.name}  # fmt: skip
    return vocab, frame, info


def train_steps(
    frame: EventFrame, mcfg: EncoderConfig, device: str, amp: bool, batch_size: int, steps: int, max_s: float
) -> dict[str, Any]:
    """`steps` timed training steps (after 5 warm-up steps) as train.train takes them; stops after max_s
    (with at least 3 timed steps)."""
    if device == "cuda" and not CUDA:
        return {"skipped": NO_CUDA, "batch_size": batch_size}
    dev = torch.device(device)
    cfg = TrainConfig(batch_size=batch_size, seed=0)
    torch.manual_seed(0)
    model = SessionEncoder(mcfg).to(dev).train()
    opt = make_optimizer(model, cfg)
    rows = np.arange(len(frame))
    batches = epoch_batches(rows, frame.lengths, batch_size, np.random.default_rng(0))
    warmup, done, seen = 5, 0, 0
    losses: list[float] = []
    t0 = t_start = time.perf_counter()
    for i in range(warmup + steps):
        if i == warmup:
            sync(dev)
            t0 = time.perf_counter()
        b = batches[i % len(batches)]
        with torch.autocast(dev.type, torch.bfloat16, enabled=amp):
            loss, parts = batch_loss(model, frame, b, cfg, np.random.default_rng([0, i]), dev)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(parts["loss"])
        if i >= warmup:
            done, seen = done + 1, seen + len(b)
        if time.perf_counter() - t_start > max_s and done >= 3:
            break
    sync(dev)
    s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "device": device, "amp_bf16": amp, "batch_size": batch_size, "timed_steps": done, "seconds": round(s, 3),
        "sessions_per_s": round(seen / s) if done else None, "ms_per_step": round(1e3 * s / done, 2) if done else None,
        "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4), "torch_threads": torch.get_num_threads(),
    }  # fmt: skip
    if dev.type == "cuda":
        out["max_memory_mib"] = round(torch.cuda.max_memory_allocated(dev) / 2**20)
        torch.cuda.reset_peak_memory_stats(dev)
    return out


def train_e2e(table: pa.Table, work: Path, text: TextVectors, mcfg: EncoderConfig, max_min: float) -> dict[str, Any]:
    """train.train for one bounded epoch, then the same through train_distributed with 1 process."""
    from clickintent.encoder.distributed import train_distributed
    from clickintent.encoder.train import train

    device = "cuda" if CUDA else "cpu"
    cfg = TrainConfig(epochs=1, seed=0, device=device, max_minutes=max_min, warmup_steps=20)
    t = time.perf_counter()
    one = train(table, work / "e2e-train", mcfg, cfg, text=text, progress=False, resume=False)
    t_one = time.perf_counter() - t
    out: dict[str, Any] = {
        "device": device, "sessions": table.num_rows, "train": {
            "seconds": round(t_one, 2), "steps": one.steps, "stopped": one.stopped,
            "sessions_per_s_in_loop": round(one.sessions_per_second), "best_val_loss": round(one.best_val_loss, 4),
        },
    }  # fmt: skip
    t = time.perf_counter()
    ddp = train_distributed(
        table, work / "e2e-ddp1", mcfg, cfg, nproc=1, text=text, progress=False, resume=False
    )  # spawns 1 worker: nccl on CUDA, gloo on CPU
    t_ddp = time.perf_counter() - t
    assert ddp is not None
    n = min(len(one.step_losses), len(ddp.step_losses))
    a, b = np.array(one.step_losses[:n]), np.array(ddp.step_losses[:n])
    rel = np.abs(a - b) / np.maximum(np.abs(a), 1e-12)
    out["ddp_1proc"] = {
        "backend": "nccl" if CUDA else "gloo", "seconds_incl_spawn": round(t_ddp, 2), "steps": ddp.steps,
        "sessions_per_s_in_loop": round(ddp.sessions_per_second), "compared_steps": n,
        "max_rel_loss_diff_first10": float(rel[:10].max()) if n else None,
        "max_rel_loss_diff": float(rel.max()) if n else None,
    }  # fmt: skip
    return out


def embed_speed(
    model: SessionEncoder, vocab: Vocab, text: TextVectors, frame: EventFrame, table: pa.Table, device: str,
    batch_size: int, max_sessions: int,
) -> dict[str, Any]:  # fmt: skip
    if device == "cuda" and not CUDA:
        return {"skipped": NO_CUDA}
    dev = torch.device(device)
    emb = Embedder(copy.deepcopy(model), vocab, "bench", text, dev, batch_size=batch_size)  # it moves the model
    n = min(max_sessions, len(frame))
    sub_rows = np.arange(n)
    sub = frame_subset(frame, sub_rows)
    emb.embed_frame(frame_subset(frame, sub_rows[: min(n, 2 * batch_size)]))  # warm-up: kernels, allocator
    sync(dev)
    t = time.perf_counter()
    emb.embed_frame(sub)
    sync(dev)
    model_s = time.perf_counter() - t
    k = min(n, 20_000)
    t = time.perf_counter()
    emb.embed_sessions(table.slice(0, k))
    sync(dev)
    full_s = time.perf_counter() - t
    return {
        "device": device, "batch_size": batch_size, "sessions": n,
        "model_only_sessions_per_s": round(n / model_s), "model_only_seconds": round(model_s, 3),
        "featurize_and_model_sessions": k, "featurize_and_model_sessions_per_s": round(k / full_s),
    }  # fmt: skip


def frame_subset(frame: EventFrame, rows: np.ndarray) -> EventFrame:
    """The first sessions of a frame (rows must be 0..n-1) without copying the event columns."""
    return replace(frame, offsets=frame.offsets[: len(rows) + 1])


def ddp_cpu(table: pa.Table, work: Path, text: TextVectors, mcfg: EncoderConfig, max_min: float) -> dict[str, Any]:
    """One short epoch on CPU: 1 process with all cores vs 2 processes with half the cores each."""
    from clickintent.encoder.distributed import train_distributed
    from clickintent.encoder.train import train

    cores = os.cpu_count() or 1
    base = TrainConfig(epochs=1, seed=0, device="cpu", max_minutes=max_min, warmup_steps=20)
    t = time.perf_counter()
    one = train(table, work / "cpu-1", mcfg, replace(base, threads=cores), text=text, progress=False, resume=False)
    t_one = time.perf_counter() - t
    t = time.perf_counter()
    two = train_distributed(table, work / "cpu-2", mcfg, base, nproc=2, text=text, progress=False, resume=False)
    t_two = time.perf_counter() - t
    assert two is not None
    n = min(len(one.step_losses), len(two.step_losses))
    rel = np.abs(np.array(one.step_losses[:n]) - np.array(two.step_losses[:n])) / np.array(one.step_losses[:n])
    return {
        "sessions": table.num_rows, "cores": cores,
        "one_process": {"threads": cores, "seconds": round(t_one, 2), "steps": one.steps,
                        "sessions_per_s_in_loop": round(one.sessions_per_second)},
        "two_processes": {"threads_each": max(1, cores // 2), "seconds_incl_spawn": round(t_two, 2),
                          "steps": two.steps, "sessions_per_s_in_loop": round(two.sessions_per_second)},
        "compared_steps": n, "max_rel_loss_diff_first10": float(rel[:10].max()) if n else None,
        "max_rel_loss_diff": float(rel.max()) if n else None,
    }  # fmt: skip


# --- summary -----------------------------------------------------------------------------------------


def summary(results: dict[str, Any]) -> str:
    env, ph = results["env"], results["phases"]
    gpu = f"{env.get('gpu')} ({env.get('gpus')} GPU, CUDA {env.get('cuda')})" if env["cuda_available"] else NO_CUDA
    lines = [
        "clickintent bench_gpu (issue 8)",
        f"machine: {gpu}; {env['cpu_count']} CPU cores, torch {env['torch']} ({env['torch_threads']} threads), "
        f"Python {env['python']}",
    ]

    def rate(r: Any, key: str = "sessions_per_s") -> str:
        if not isinstance(r, dict):
            return "-"
        if r.get("skipped") == NO_CUDA:
            return "no CUDA"
        if "skipped" in r or "error" in r:
            return str(r.get("skipped") or r.get("error"))[:60]
        return f"{r.get(key)}"

    data = ph.get("data", {})
    if "sessions" in data:
        lines.append(
            f"data: {data['events']:,} events -> {data['sessions']:,} sessions (simulate {data['simulate_s']}s, "
            f"ingest {data['ingest_s']}s, sessionize {data['sessionize_s']}s)"
        )
    elif data:
        lines.append(f"data: {rate(data)}")
    feat = ph.get("featurize", {})
    if "sessions_per_s" in feat:
        lines.append(f"featurize: {feat['sessions_per_s']:,} sessions/s ({feat['text_model']} text vectors)")
    lines.append("")
    lines.append("training steps, sessions/s (train.batch_loss + AdamW, after warm-up):")
    lines.append(f"  {'batch':>6} {'cpu':>12} {'cuda fp32':>12} {'cuda bf16':>12} {'cuda/cpu':>9}")
    for bs in sorted({r["batch_size"] for r in ph.get("train_steps", {}).values() if "batch_size" in r}):
        row = {k: v for k, v in ph["train_steps"].items() if v.get("batch_size") == bs}
        cpu, f32, b16 = (row.get(f"{d}_{bs}") for d in ("cpu", "cuda", "cuda-bf16"))
        speed = "-"
        if isinstance(cpu, dict) and isinstance(f32, dict) and cpu.get("sessions_per_s") and f32.get("sessions_per_s"):
            speed = f"{f32['sessions_per_s'] / cpu['sessions_per_s']:.1f}x"
        lines.append(f"  {bs:>6} {rate(cpu):>12} {rate(f32):>12} {rate(b16):>12} {speed:>9}")
    emb = ph.get("embed", {})
    if emb:
        lines.append("")
        lines.append("embedding, sessions/s (model only | featurize + model):")
        for name, r in emb.items():
            if isinstance(r, dict) and "model_only_sessions_per_s" in r:
                model_only, full = r["model_only_sessions_per_s"], r["featurize_and_model_sessions_per_s"]
                lines.append(f"  {name:14s} {model_only:>10,} | {full:>8,}")
            else:
                lines.append(f"  {name:14s} {rate(r)}")
    e2e = ph.get("train_e2e", {})
    if "train" in e2e:
        t, d = e2e["train"], e2e["ddp_1proc"]
        lines += [
            "",
            f"train.train on {e2e['device']}, {e2e['sessions']:,} sessions: {t['steps']} steps in {t['seconds']}s "
            f"({t['sessions_per_s_in_loop']:,} sessions/s in the loop, {t['stopped']})",
            f"  same via DDP, 1 process ({d['backend']}): {d['seconds_incl_spawn']}s incl. spawn, "
            f"max rel loss diff {d['max_rel_loss_diff_first10']:.1e} (first 10 steps), "
            f"{d['max_rel_loss_diff']:.1e} (all)",
        ]
    elif e2e:
        lines.append(f"train_e2e: {rate(e2e)}")
    dc = ph.get("ddp_cpu", {})
    if "one_process" in dc:
        lines += [
            f"CPU, {dc['sessions']:,} sessions, one epoch: 1 process x {dc['one_process']['threads']} threads "
            f"{dc['one_process']['seconds']}s ({dc['one_process']['sessions_per_s_in_loop']:,}/s) vs 2 processes x "
            f"{dc['two_processes']['threads_each']} threads {dc['two_processes']['seconds_incl_spawn']}s incl. spawn "
            f"({dc['two_processes']['sessions_per_s_in_loop']:,}/s); max rel loss diff {dc['max_rel_loss_diff']:.1e}",
        ]
    elif dc:
        lines.append(f"ddp_cpu: {rate(dc)}")
    errors = [k for k, v in ph.items() if isinstance(v, dict) and "error" in v]
    lines += ["", f"total {results.get('total_seconds')}s; failed phases: {', '.join(errors) or 'none'}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out/gpu")), help="results folder")
    p.add_argument("--visitors", type=int, default=22_000, help="simulated visitors (22k x 30 days ~ 1M events)")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--budget-s", type=float, default=250, help="wall-clock budget; later phases are skipped")
    p.add_argument("--steps", type=int, default=60, help="timed training steps per configuration")
    p.add_argument("--step-max-s", type=float, default=20, help="cap per training configuration")
    p.add_argument("--batch-sizes", default="128,1024", help="training batch sizes (128 is the default)")
    p.add_argument("--e2e-sessions", type=int, default=20_000, help="sessions for train.train and DDP runs")
    p.add_argument("--embed-cpu-sessions", type=int, default=30_000, help="sessions embedded on CPU")
    p.add_argument("--text-model", default=HASHING_NAME, choices=[HASHING_NAME, MINILM_NAME])
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir, removed)")
    args = p.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    bench = Bench(args.out, args.budget_s)
    bench.results["args"] = {k: str(v) for k, v in vars(args).items()}
    t_all = time.perf_counter()
    try:
        run(bench, args, work)
    except KeyboardInterrupt:  # run.sh's timeout sends SIGINT: keep what was measured
        bench.results["interrupted"] = True
    finally:
        bench.results["total_seconds"] = round(time.perf_counter() - t_all, 1)
        bench.save()
        text = summary(bench.results)
        (args.out / "bench_gpu.txt").write_text(text)
        print(text, flush=True)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def run(bench: Bench, args: argparse.Namespace, work: Path) -> None:
    data = bench.phase("data", lambda: make_data(work, args.visitors, args.days), need_s=10)
    if "error" in data or "skipped" in data:
        return
    table = pq.read_table(work / "data" / "sessions.parquet", columns=["session_id", "events"])
    text = TextVectors(text_encoder(args.text_model, device="cuda" if CUDA else "cpu"), work / "textcache")
    got: dict[str, Any] = {}

    def feat() -> dict[str, Any]:
        got["vocab"], got["frame"], info = featurize(table, text)
        return info

    if "error" in bench.phase("featurize", feat, need_s=10):
        return
    vocab, frame = got["vocab"], got["frame"]
    mcfg = EncoderConfig().for_vocab(vocab)  # the default model: 64 wide, 2 layers
    bench.results["model"] = {"params": SessionEncoder(mcfg).num_params(), "config": mcfg.to_json()}

    steps: dict[str, Any] = {}
    bench.results["phases"]["train_steps"] = steps
    for bs in (int(x) for x in args.batch_sizes.split(",")):
        for name, device, amp in (("cpu", "cpu", False), ("cuda", "cuda", False), ("cuda-bf16", "cuda", True)):
            key = f"{name}_{bs}"
            if bench.left() < args.step_max_s + 5:
                steps[key] = {"skipped": "budget", "batch_size": bs}
                continue
            print(f"[bench_gpu] train_steps {key} ({bench.left():.0f}s left)", flush=True)
            try:
                steps[key] = train_steps(frame, mcfg, device, amp, bs, args.steps, args.step_max_s)
            except Exception as exc:
                steps[key] = {"error": f"{type(exc).__name__}: {exc}", "batch_size": bs,
                              "traceback": traceback.format_exc()[-3000:]}  # fmt: skip
            bench.save()

    torch.manual_seed(0)
    model = SessionEncoder(mcfg).eval()  # random weights: speed does not depend on them
    embed: dict[str, Any] = {}
    bench.results["phases"]["embed"] = embed
    for name, device, bs, n in (
        ("cpu_b512", "cpu", 512, args.embed_cpu_sessions),
        ("cuda_b512", "cuda", 512, len(frame)),
        ("cuda_b4096", "cuda", 4096, len(frame)),
    ):
        if bench.left() < 15:
            embed[name] = {"skipped": "budget"}
            continue
        print(f"[bench_gpu] embed {name} ({bench.left():.0f}s left)", flush=True)
        try:
            embed[name] = embed_speed(model, vocab, text, frame, table, device, bs, n)
        except Exception as exc:
            embed[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
        bench.save()

    subset = table.slice(0, min(args.e2e_sessions, table.num_rows))
    budget_min = max(0.1, min(1.0, (bench.left() - 60) / 3 / 60))
    bench.phase("train_e2e", lambda: train_e2e(subset, work, text, mcfg, budget_min), need_s=60)
    budget_min = max(0.1, min(0.75, (bench.left() - 40) / 3 / 60))
    bench.phase("ddp_cpu", lambda: ddp_cpu(subset, work, text, mcfg, budget_min), need_s=50)


if __name__ == "__main__":
    main()
