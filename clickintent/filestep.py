"""A step over one sessions file: stream its batches through a function into one Parquet file.

`map_file` is the loop `embed_file` and `label_file` share: read `columns` of a Parquet file or folder in
chunks, write what `fn` returns for each chunk, with a progress bar, into a temporary file renamed over
`out` only when every chunk is written (a failed step leaves no half file). It returns `StepStats`. Left
out: parallelism (the Spark path is engines/spark_bundle.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq


@dataclass(frozen=True)
class StepStats:
    """What a step over one sessions file did: how many sessions, in how long, written where."""

    sessions: int
    seconds: float
    out: Path

    @property
    def per_second(self) -> float:
        return self.sessions / self.seconds if self.seconds else 0.0


def map_file(source: str | Path, columns: list[str], fn: Callable[[pa.RecordBatch], pa.RecordBatch],
             schema: pa.Schema, out: str | Path, *, chunk_rows: int = 16_384, progress: bool = False,
             desc: str = "") -> StepStats:  # fmt: skip
    """Write `fn(chunk)` for every non-empty chunk of `source`'s `columns` into `out` (schema `schema`)."""
    from tqdm.auto import tqdm

    out = Path(out)
    if out.is_dir():  # checked before any work: os.replace would fail only after the whole pass
        raise ValueError(f"{out} is a folder: give the name of the Parquet file to write (a new or old file)")
    dataset = ds.dataset(str(source), format="parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    t0, n = time.perf_counter(), 0
    bar = tqdm(total=dataset.count_rows(), unit="sess", disable=not progress, desc=desc)
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for chunk in dataset.to_batches(columns=columns, batch_size=chunk_rows):
                if chunk.num_rows:
                    writer.write_batch(fn(chunk))
                    n += chunk.num_rows
                    bar.update(chunk.num_rows)
        os.replace(tmp, out)
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    return StepStats(n, time.perf_counter() - t0, out)
