"""How the CLI answers wrong input: one line saying what is wrong and what to do, never a traceback.

- `StepInput`: a click parameter type for a step's input (events, sessions, embeddings, labels). It takes
  the file or the folder the step before wrote and checks it (`clickintent.inputs`) before the command runs,
  so nothing is written for wrong input.
- `TaxonomyFile`: a taxonomy.json that loads.
- `MainGroup`: the `clickintent` group; errors the library raises for bad input (InputError, IngestError,
  BundleError, LLMError, ValueError, OSError, ...) become `Error: <one line>` with exit status 1; anything
  else is reported in one line as a bug, with the traceback under `clickintent -v`. Usage errors keep
  click's exit status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from clickintent.inputs import InputError, Kind, resolve, resolve_rows


def one_line(message: str) -> str:
    return " ".join(str(message).split())


class StepInput(click.ParamType):
    """The path of a step's input: the file, or the folder its step wrote; checked before the command runs.

    `action` (e.g. "sessionize"): also refuse a file with no rows, saying there is nothing to do.
    """

    name = "path"

    def __init__(self, kind: Kind, action: str | None = None) -> None:
        self.kind = kind
        self.action = action

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        try:
            if self.action is None:
                return resolve(value, self.kind)
            return resolve_rows(value, self.kind, self.action)
        except InputError as exc:  # bad input, not bad usage: exit 1
            raise click.ClickException(one_line(str(exc))) from exc


class TaxonomyFile(click.ParamType):
    """A taxonomy.json that loads (`clickintent taxonomy build` writes one)."""

    name = "taxonomy.json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        from clickintent.taxonomy.taxonomy import Taxonomy

        path = Path(value)
        hint = "give the taxonomy.json that `clickintent taxonomy build` writes"
        if not path.is_file():
            raise click.ClickException(f"{path} is not a file; {hint}")
        try:
            Taxonomy.load(path)
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
            raise click.ClickException(one_line(f"{path} is not a valid taxonomy ({exc}); {hint}")) from exc
        return path


def _known() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input or a failed call, whose message is the answer."""
    from clickintent.bundle import BundleError
    from clickintent.ingest.readers import IngestError
    from clickintent.llm.base import LLMError, MissingExtra

    return (InputError, IngestError, BundleError, LLMError, MissingExtra, ValueError, OSError)


class MainGroup(click.Group):
    """`clickintent`: subcommands whose errors come back as one line (see the module docstring)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except _known() as exc:
            if ctx.params.get("verbose"):
                raise
            raise click.ClickException(one_line(str(exc) or type(exc).__name__)) from exc
        except Exception as exc:
            if ctx.params.get("verbose"):
                raise
            what = f"unexpected {type(exc).__name__}: {exc}"
            raise click.ClickException(
                one_line(f"{what} (a bug in clickintent: run `clickintent -v ...` for the traceback, and report it)")
            ) from exc
