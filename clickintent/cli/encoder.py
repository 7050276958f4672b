"""CLI: `clickintent train` (self-supervised encoder -> bundle) and `clickintent embed` (sessions -> vectors).

Both call plain functions (encoder.train.train or encoder.distributed.train_distributed, encoder.embed.embed_file
or engines.spark_bundle.embed_spark) and end with a one-screen summary. Heavy imports happen inside the
commands so `clickintent --help` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from clickintent.cli.errors import StepInput
from clickintent.cli.options import device_option, engine_options
from clickintent.inputs import SESSIONS


@click.command("train")
@click.argument("sessions", type=StepInput(SESSIONS, "train on"))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Bundle directory to write.")
@click.option("--epochs", default=6, show_default=True, help="Passes over the training split.")
@click.option("--batch-size", default=128, show_default=True, help="Sessions per step (all processes together).")
@click.option("--lr", default=2e-3, show_default=True, help="Peak learning rate (AdamW).")
@click.option("--dim", default=64, show_default=True, help="Width of the event vectors and Transformer.")
@click.option("--layers", default=2, show_default=True, type=click.IntRange(1, 8), help="Transformer blocks.")
@click.option("--out-dim", default=64, show_default=True, help="Width of the session embedding.")
@click.option("--masked-weight", default=1.0, show_default=True, help="Masked-event loss weight (0 = off).")
@click.option("--contrastive-weight", default=1.0, show_default=True, help="Contrastive loss weight (0 = off).")
@click.option("--no-text", is_flag=True, help="Ablation: ignore page titles and search queries.")
@click.option("--val-fraction", default=0.05, show_default=True, help="Share of sessions held out.")
@click.option("--patience", default=2, show_default=True, help="Early stopping after N flat epochs.")
@click.option("--seed", default=0, show_default=True, help="Random seed (runs are deterministic per seed).")
@click.option("--max-minutes", type=float, default=None, help="Wall-clock budget; keeps the best weights.")
@device_option("Where to train (auto: CUDA if there).")
@click.option(
    "--threads", type=int, default=None,
    help="Torch CPU threads per process (default: torch's choice; with --nproc N, cores // N).",
)  # fmt: skip
@click.option(
    "--nproc", default=1, show_default=True, type=click.IntRange(min=1),
    help="Data-parallel processes (DDP: gloo on CPU, one GPU each with nccl); each takes a shard of every "
    "batch, so the loss curve matches one process.",
)  # fmt: skip
@click.option("--amp", is_flag=True, help="bf16 autocast for the training steps (CUDA only; ignored on CPU).")
@click.option(
    "--text-cache", type=click.Path(path_type=Path), default=None,
    help="Directory of the text-vector cache (default $CLICKINTENT_CACHE_DIR/text or ~/.cache/clickintent/text).",
)  # fmt: skip
@click.option(
    "--checkpoint-dir", type=click.Path(path_type=Path), default=None,
    help="Where checkpoints go (default: OUT.ckpt beside the bundle).",
)  # fmt: skip
@click.option(
    "--text-model", type=click.Choice(["all-MiniLM-L6-v2", "hashing-384"]), default="all-MiniLM-L6-v2",
    show_default=True, help="Text vectors for titles and queries; hashing-384 is a fast stand-in for tests.",
)  # fmt: skip
@click.option("--resume/--no-resume", default=True, show_default=True, help="Continue a matching checkpoint.")
def train_cmd(
    sessions: Path,
    out: Path,
    epochs: int,
    batch_size: int,
    lr: float,
    dim: int,
    layers: int,
    out_dim: int,
    masked_weight: float,
    contrastive_weight: float,
    no_text: bool,
    val_fraction: float,
    patience: int,
    seed: int,
    max_minutes: float | None,
    device: str,
    threads: int | None,
    nproc: int,
    amp: bool,
    text_cache: Path | None,
    checkpoint_dir: Path | None,
    text_model: str,
    resume: bool,
) -> None:
    """Train the session encoder on SESSIONS (sessions.parquet) and write a model bundle to --out.

    With --nproc N, N processes train one model data-parallel (also when started by torchrun).
    """
    from clickintent.encoder.distributed import launched_by_torchrun, train_distributed
    from clickintent.encoder.embed import resolve_device
    from clickintent.encoder.model import EncoderConfig
    from clickintent.encoder.text import TextVectors, text_encoder
    from clickintent.encoder.train import TrainConfig, train

    mcfg = EncoderConfig(d_model=dim, n_layers=layers, d_ff=2 * dim, out_dim=out_dim, use_text=not no_text)
    tcfg = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, masked_weight=masked_weight,
        contrastive_weight=contrastive_weight, val_fraction=val_fraction, patience=patience, seed=seed,
        max_minutes=max_minutes, device=device, threads=threads, amp=amp,
    )  # fmt: skip
    torchrun = launched_by_torchrun()
    try:
        text = TextVectors(text_encoder(text_model, device=resolve_device(device).type), text_cache)
        if nproc > 1 or torchrun:
            got = train_distributed(
                sessions, out, mcfg, tcfg, nproc=nproc, text=text, checkpoint_dir=checkpoint_dir, resume=resume
            )
            if got is None:  # a torchrun worker other than rank 0: rank 0 reports
                return
            res = got
        else:
            res = train(sessions, out, mcfg, tcfg, text=text, checkpoint_dir=checkpoint_dir, resume=resume)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"bundle        {res.bundle}")
    click.echo(f"model_version {res.model_version}")
    world = int(os.environ.get("WORLD_SIZE", "1")) if torchrun else nproc
    where = f" on {world} processes" if world > 1 else ""
    click.echo(f"stopped       {res.stopped} after {res.epochs} epochs, {res.steps} steps, {res.seconds:.0f}s{where}")
    click.echo(f"val loss      {res.best_val_loss:.4f}   train throughput {res.sessions_per_second:.0f} sessions/s")
    for row in res.history:
        click.echo("  " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))


@click.command("embed")
@click.argument("sessions", type=StepInput(SESSIONS, "embed"))
@click.option("--bundle", required=True, type=click.Path(exists=True, path_type=Path), help="Model bundle.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="embeddings.parquet to write.")
@engine_options("stream in this process", "mapInArrow, written as a Parquet directory")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Sessions per model call [default: 128 on CPU, 512 on a GPU].")  # fmt: skip
@click.option("--chunk-rows", default=16_384, show_default=True, help="Sessions read per chunk (bounds memory).")
@device_option("Where to run the model.")
@click.option("--text-cache", type=click.Path(path_type=Path), default=None, help="Text-vector cache directory.")
def embed_cmd(
    sessions: Path,
    bundle: Path,
    out: Path,
    engine: str,
    spark_master: str,
    batch_size: int | None,
    chunk_rows: int,
    device: str,
    text_cache: Path | None,
) -> None:
    """Embed every session of SESSIONS with --bundle into embeddings.parquet (schema.EMBEDDINGS)."""
    from clickintent.bundle import BundleError

    try:
        if engine == "spark":
            import time

            from clickintent.engines.spark import get_spark
            from clickintent.engines.spark_bundle import embed_spark

            t0 = time.perf_counter()
            spark = get_spark(spark_master)
            embed_spark(spark, sessions, bundle, out, batch_size=batch_size, text_cache=text_cache)
            n = spark.read.parquet(str(out)).count()
            click.echo(f"embedded {n} sessions with Spark in {time.perf_counter() - t0:.1f}s -> {out}/")
            return
        from clickintent.encoder.embed import embed_file

        stats = embed_file(
            sessions, bundle, out, device=device, batch_size=batch_size, chunk_rows=chunk_rows,
            text_cache=text_cache, progress=True,
        )  # fmt: skip
    except BundleError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"embedded {stats.sessions} sessions in {stats.seconds:.1f}s ({stats.per_second:.0f}/s) -> {stats.out}")
