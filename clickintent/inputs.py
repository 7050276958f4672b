"""Find and check the file a step reads, so wrong input gets one clear line instead of a traceback.

A step's input may be given as the file itself, as the folder the step before wrote (`clickintent ingest
--out DIR` writes DIR/events.parquet, so `clickintent sessionize DIR` reads that), or as a Spark part-file
directory (what `--engine spark` writes). `resolve` finds the file, checks that it is Parquet with the
columns of its kind, and says in one line what was found instead and which command makes the right file
(issue 16: `sessionize DIR` once read quarantine.parquet too and died in DuckDB). Nothing here writes.
Left out: checking values (each step validates its own); CSV and other raw inputs (ingest reads those).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq


class InputError(ValueError):
    """An input a step cannot read; the message says what is wrong and what to give instead."""


@dataclass(frozen=True)
class Kind:
    name: str  # what the rows are, in a sentence: "events"
    file: str  # the file its step writes: "events.parquet"
    made_by: str  # the command that writes it
    columns: tuple[str, ...]  # columns it must have


EVENTS = Kind("events", "events.parquet", "clickintent ingest INPUT --out DIR",
              ("visitor_id", "ts", "url", "page", "event_type", "platform"))  # fmt: skip
SESSIONS = Kind("sessions", "sessions.parquet", "clickintent sessionize EVENTS",
                ("session_id", "visitor_id", "platform", "start", "end", "n_events", "events"))  # fmt: skip
EMBEDDINGS = Kind("embeddings", "embeddings.parquet", "clickintent embed SESSIONS --bundle B --out FILE",
                  ("session_id", "embedding"))  # fmt: skip
LABELS = Kind("labels", "labels.parquet", "clickintent taxonomy label SESSIONS or clickintent label SESSIONS",
              ("session_id", "intent", "confidence"))  # fmt: skip
# What a file is, told by its columns, for the message when it is not what a step needs.
_KNOWN = (
    (("source_row", "reason", "raw"), "ingest's quarantine of refused rows"),
    (SESSIONS.columns, "sessions"),
    (EVENTS.columns, "events"),
    (EMBEDDINGS.columns, "embeddings"),
    (LABELS.columns, "labels"),
    (("visitor_id", "ts", "url"), "raw events, not yet ingested (run clickintent ingest on it first)"),
)


def describe(names: list[str]) -> str:
    """What a table with these columns is, in words."""
    for columns, what in _KNOWN:
        if set(columns) <= set(names):
            return what
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f"a table with columns {shown}" if names else "a table with no columns"


def resolve(path: str | Path, kind: Kind) -> Path:
    """The file (or Spark part-file directory) of `kind` that `path` names, checked; else InputError."""
    p = Path(path)
    wanted = f"give the {kind.file} that `{kind.made_by}` writes, or its folder"
    if not p.exists():
        raise InputError(f"{p} does not exist; {wanted}")
    if p.is_dir():
        if (p / kind.file).exists():
            p = p / kind.file
        elif not _part_files(p):
            found = sorted(c.name for c in p.iterdir() if not c.name.startswith("."))[:6]
            inside = f" (it holds {', '.join(found)})" if found else " (it is empty)"
            raise InputError(f"{p} is a folder without {kind.file}{inside}; {wanted}")
    names = _columns(p, kind)
    missing = [c for c in kind.columns if c not in names]
    if missing:
        raise InputError(f"{p} is not {kind.name}: it is {describe(names)} (no {', '.join(missing)}); {wanted}")
    return p


def count_rows(path: Path) -> int:
    """Rows of a resolved Parquet file or part-file directory, from the footers alone."""
    if path.is_dir():
        return int(ds.dataset(path, format="parquet").count_rows())
    return int(pq.ParquetFile(path).metadata.num_rows)


def resolve_rows(path: str | Path, kind: Kind, action: str) -> Path:
    """`resolve`, and an InputError when the file holds no rows (`action`: what the step would do)."""
    p = resolve(path, kind)
    if count_rows(p) == 0:
        raise InputError(f"{p} holds no {kind.name}: nothing to {action}; check the step that wrote it")
    return p


def _part_files(p: Path) -> list[Path]:
    return [c for c in p.glob("*.parquet") if c.is_file() and not c.name.startswith((".", "_"))]


def _columns(p: Path, kind: Kind) -> list[str]:
    try:
        if p.is_dir():
            return list(ds.dataset(p, format="parquet").schema.names)
        if p.stat().st_size == 0:
            raise InputError(f"{p} is empty (0 bytes); give the {kind.file} that `{kind.made_by}` writes")
        return list(pq.read_schema(p).names)
    except (pa.ArrowException, OSError) as exc:
        hint = " (run clickintent ingest on raw files first)" if p.suffix.lower() in (".csv", ".tsv", ".jsonl") else ""
        raise InputError(f"{p} is not a readable Parquet file{hint}; give the {kind.file} that "
                         f"`{kind.made_by}` writes") from exc  # fmt: skip
