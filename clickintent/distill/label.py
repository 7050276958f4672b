"""Label every session with the distilled classifier: sessions (or embeddings) in, labels.parquet out.

`label_file` streams a sessions.parquet chunk by chunk (bounded memory: one chunk of sessions and its
vectors at a time), embeds each chunk with the bundle's encoder unless precomputed embeddings are given,
and writes schema.LABELS rows with source `distilled`. `Labeller` is the in-process object the service, the
latency benchmark and the Spark job (`clickintent.engines.spark_bundle.label_spark`, which runs it on each
executor) use. A classifier that reads page text too (inputs `embedding+text`, distill/features.py) gets
each session's text mean from the same featurized frame the encoder reads, on every path (one session,
a batch, Spark); with precomputed embeddings the sessions are still read for their text (the embeddings
are then held in memory, looked up by session id). Left out: top-k output in the Parquet file.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from clickintent import schema
from clickintent.bundle import Bundle, load_bundle
from clickintent.distill.classifier import COMPONENT, IntentClassifier
from clickintent.distill.features import classifier_input, session_text_means, uses_text
from clickintent.encoder.batches import EventFrame
from clickintent.encoder.embed import Embedder
from clickintent.filestep import StepStats, map_file

SOURCE = "distilled"


class Labeller:
    """Encoder + classifier from one bundle."""

    def __init__(self, embedder: Embedder, classifier: IntentClassifier, taxonomy_version: str) -> None:
        self.embedder = embedder
        self.classifier = classifier
        self.taxonomy_version = taxonomy_version

    @classmethod
    def from_bundle(cls, bundle: Bundle | str | Path, device: str = "cpu", text_cache: str | Path | None = None,
                    batch_size: int | None = None) -> Labeller:  # fmt: skip
        b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        clf = IntentClassifier.from_bundle(b)
        version = str(b.component(COMPONENT).get("taxonomy_version", ""))
        return cls(Embedder.from_bundle(b.path, device, text_cache, batch_size), clf, version)

    @property
    def uses_text(self) -> bool:
        return uses_text(self.classifier.inputs)

    def text_means(self, frame: EventFrame) -> np.ndarray | None:
        """The frame's per-session text means when the classifier reads them, else None."""
        return session_text_means(frame) if self.uses_text else None

    def label_one(self, events: Sequence[Mapping[str, Any]]) -> tuple[str, float]:
        """(label id, confidence) for one session given as event dicts: the low-latency path."""
        frame = self.embedder.featurizer.frame_rows([events])
        x = classifier_input(self.classifier.inputs, self.embedder.embed_frame(frame), self.text_means(frame))
        ids, conf = self.classifier.predict(x)
        return ids[0], float(conf[0])

    def labels_batch(self, sessions: pa.Table | pa.RecordBatch) -> pa.RecordBatch:
        frame = self.embedder.featurizer.frame(sessions)
        return self.labels_from_vectors(sessions.column("session_id"), self.embedder.embed_frame(frame),
                                        self.text_means(frame))  # fmt: skip

    def labels_from_vectors(
        self, ids: Any, vectors: np.ndarray, text_means: np.ndarray | None = None
    ) -> pa.RecordBatch:
        """Labels from embeddings (and, for a classifier that reads text, the sessions' text means)."""
        intents, conf = self.classifier.predict(classifier_input(self.classifier.inputs, vectors, text_means))
        ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        n = len(intents)
        return pa.RecordBatch.from_arrays(
            [
                pa.array(ids, pa.string()),
                pa.array(intents, pa.string()),
                pa.array(conf, pa.float32()),
                pa.array([SOURCE] * n, pa.string()),
                pa.array([self.taxonomy_version] * n, pa.string()),
            ],
            schema=schema.LABELS,
        )


LabelStats = StepStats  # sessions, seconds, out (clickintent/filestep.py)


def label_file(
    sessions: str | Path | None,
    bundle: str | Path,
    out: str | Path,
    *,
    embeddings: str | Path | None = None,
    device: str = "auto",
    chunk_rows: int = 16_384,
    text_cache: str | Path | None = None,
    progress: bool = False,
) -> LabelStats:
    """Label every session of `sessions` (or every row of `embeddings`, when given: no encoder call)."""

    labeller = Labeller.from_bundle(bundle, device, text_cache)

    def from_vectors(chunk: pa.RecordBatch) -> pa.RecordBatch:
        mat = chunk.column("embedding").flatten().to_numpy().reshape(chunk.num_rows, -1)
        return labeller.labels_from_vectors(chunk.column("session_id"), mat)

    if embeddings is not None and labeller.uses_text:
        if sessions is None:
            raise ValueError("this bundle's classifier reads the sessions' page text too: give the sessions")
        return map_file(sessions, ["session_id", "events"], _with_stored_vectors(labeller, embeddings),
                        schema.LABELS, out, chunk_rows=chunk_rows, progress=progress, desc="label")  # fmt: skip
    if embeddings is not None:
        return map_file(embeddings, ["session_id", "embedding"], from_vectors, schema.LABELS, out,
                        chunk_rows=chunk_rows, progress=progress, desc="label")  # fmt: skip
    if sessions is None:
        raise ValueError("give sessions or embeddings to label")
    return map_file(sessions, ["session_id", "events"], labeller.labels_batch, schema.LABELS, out,
                    chunk_rows=chunk_rows, progress=progress, desc="label")  # fmt: skip


def _with_stored_vectors(labeller: Labeller, embeddings: str | Path) -> Any:
    """A chunk job: sessions in, labels out, the embeddings read from `embeddings` (by session id) and the
    text means computed from the chunk's events."""
    import pyarrow.parquet as pq

    table = pq.read_table(embeddings, columns=["session_id", "embedding"])
    row = {s: i for i, s in enumerate(table.column("session_id").to_pylist())}
    vecs = table.column("embedding").combine_chunks()
    mat = vecs.flatten().to_numpy().reshape(table.num_rows, -1)

    def job(chunk: pa.RecordBatch) -> pa.RecordBatch:
        ids = chunk.column("session_id").to_pylist()
        missing = [s for s in ids if s not in row]
        if missing:
            raise ValueError(f"{len(missing)} sessions have no row in {embeddings}, e.g. {missing[0]!r}")
        text = session_text_means(labeller.embedder.featurizer.frame(chunk))
        return labeller.labels_from_vectors(chunk.column("session_id"), mat[[row[s] for s in ids]], text)

    return job


def latency(
    labeller: Labeller, sessions: pa.Table, n: int = 200, warmup: int = 20, threads: int = 1
) -> dict[str, float]:
    """Label cost in this process, in seconds: one session at a time (embed + classify; p50, p99, mean) and
    per session in one batch of up to 2,000 (`batch_per_session`, the median of five runs), the way
    `clickintent label` runs.

    Measured on `threads` torch threads: pass the LLM labeller's thread count (the local backend's
    `n_threads`, 1 by default) so that a ratio of the two compares them on the same cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _latency(labeller, sessions, n, warmup) | {"threads": threads}
    finally:
        torch.set_num_threads(before)


def _latency(labeller: Labeller, sessions: pa.Table, n: int, warmup: int) -> dict[str, float]:
    rows = sessions.slice(0, min(n + warmup, sessions.num_rows)).column("events").to_pylist()
    times = []
    for i, events in enumerate(rows):
        t0 = time.perf_counter()
        labeller.label_one(events)
        if i >= warmup or len(rows) <= warmup:
            times.append(time.perf_counter() - t0)
    arr = np.array(times)
    batch = sessions.slice(0, min(2000, sessions.num_rows))
    labeller.labels_batch(batch.slice(0, min(64, batch.num_rows)))  # warm-up
    runs = []
    for _ in range(5):  # the median of five: one batch is a fraction of a second, and noisy
        t0 = time.perf_counter()
        labeller.labels_batch(batch)
        runs.append(time.perf_counter() - t0)
    per_session = float(np.median(runs)) / max(1, batch.num_rows)
    return {
        "p50": float(np.median(arr)),
        "p99": float(np.quantile(arr, 0.99)),
        "mean": float(arr.mean()),
        "n": len(arr),
        "batch_per_session": per_session,
        "batch_sessions": batch.num_rows,
    }
