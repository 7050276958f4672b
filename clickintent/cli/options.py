"""CLI options shared by several command groups: `--engine local|spark`, `--spark-master`, `--out DIR`,
`--device auto|cpu|cuda`.

Every command with a Spark path (ingest, sessionize, embed, label) takes the same two options with the same
values, passed to the command as `engine` and `spark_master`. `local` is the in-process path (DuckDB for
ingest and sessionize, this process's torch for embed and label); `duckdb`, the data commands' old name
for it, is still accepted. Left out: `serve --engine auto|onnx|torch`, which picks the service's encoder
runtime (ONNX or torch), not where a batch step runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

ENGINES = ("local", "spark")
OLD_ENGINE_NAMES = {"duckdb": "local"}  # accepted, not listed: scripts written before issue 22 keep working


class EngineChoice(click.Choice):
    """`local` or `spark`; an old name is read as the engine it stood for."""

    def __init__(self) -> None:
        super().__init__(ENGINES)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return super().convert(OLD_ENGINE_NAMES.get(value, value), param, ctx)


def engine_options(local: str, spark: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """--engine and --spark-master for a command; `local` and `spark` say what each engine does there."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        engine = click.option(
            "--engine", type=EngineChoice(), default="local", show_default=True,
            help=f"local: {local}. spark: {spark}, on PySpark (extra 'spark') at --spark-master. "
            "'duckdb' (the old name) means local.",
        )  # fmt: skip
        master = click.option("--spark-master", default="local[*]", show_default=True,
                              help="Spark master URL (with --engine spark).")  # fmt: skip
        return engine(master(command))

    return decorate


def out_dir_option(help: str, default: str | None = "out") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--out DIR` (passed as `out_dir`): a folder a command writes into; `default` None makes it required."""
    extra: dict[str, Any] = {"required": True} if default is None else {"default": Path(default), "show_default": True}
    return click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help=help, **extra)


def device_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--device auto|cpu|cuda` (passed as `device`): where torch runs; auto takes CUDA when torch sees one."""
    return click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                        help=help)  # fmt: skip
