"""Session embeddings from a bundle, in this process: a batch, a file, or one session at a time.

`Embedder` is what the service and later steps call: `Embedder.from_bundle(dir)`, then `embed_one(events)`
for one session, `embed_sessions(table)` for an Arrow table, or `embed_file(...)` to stream a
sessions.parquet into embeddings.parquet in chunks with bounded memory. Within a chunk, sessions are
sorted by length and each batch is padded only to its longest session. The Spark job
(`clickintent.engines.spark_bundle.embed_spark`) runs this same `Embedder` on each executor, so both engines
give the same vectors. What it leaves out: ONNX/quantised inference, GPU batching across chunks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from clickintent.bundle import Bundle
from clickintent.encoder.features import EventFrame, Featurizer, Vocab, collate
from clickintent.encoder.io import load_encoder
from clickintent.encoder.model import SessionEncoder
from clickintent.encoder.text import TextVectors, text_encoder
from clickintent.filestep import StepStats, map_file
from clickintent.schema import EMBEDDINGS

log = logging.getLogger(__name__)


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cpu' / 'cuda' / 'cuda:N' as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device} asked for CUDA, but torch sees no CUDA device")
    return torch.device(device)


def embeddings_table(session_ids: pa.Array | list[str], vectors: np.ndarray, model_version: str) -> pa.Table:
    """A table with the `schema.EMBEDDINGS` contract."""
    vectors = np.ascontiguousarray(vectors, np.float32)
    n, d = vectors.shape
    emb = pa.ListArray.from_arrays(pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32)), vectors.ravel())
    ids = session_ids if isinstance(session_ids, pa.Array) else pa.array(session_ids, pa.string())
    return pa.Table.from_arrays(
        [ids.cast(pa.string()), emb, pa.array([model_version] * n, pa.string())], schema=EMBEDDINGS
    )


# Sessions per model call when none is given. On CPU small batches win: sessions are sorted by length, so a
# batch of 128 pads little, and attention grows with the square of the longest session (docs/BENCHMARKS.md,
# "Batch size on CPU": 128 is 1.1-1.2x faster per session than 512). On a GPU large batches fill the device.
CPU_BATCH, GPU_BATCH = 128, 512


def default_batch_size(device: torch.device) -> int:
    return CPU_BATCH if device.type == "cpu" else GPU_BATCH


class Embedder:
    """A loaded encoder with its featurizer: sessions in, unit vectors out."""

    def __init__(
        self,
        model: SessionEncoder,
        vocab: Vocab,
        model_version: str,
        text: TextVectors,
        device: str | torch.device = "cpu",
        batch_size: int | None = None,
    ) -> None:
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.model = model.to(self.device).eval()
        self.vocab = vocab
        self.model_version = model_version
        self.featurizer = Featurizer(vocab, text)
        self.batch_size = batch_size or default_batch_size(self.device)

    @classmethod
    def from_bundle(
        cls,
        bundle: Bundle | str | Path,
        device: str = "auto",
        text_cache: str | Path | None = None,
        batch_size: int | None = None,
    ) -> Embedder:
        """Load and verify a bundle; text vectors come from the text model it was trained with."""
        model, vocab, version = load_encoder(bundle)
        dev = resolve_device(device)
        text = TextVectors(text_encoder(vocab.text_model, device=dev.type), text_cache)
        return cls(model, vocab, version, text, dev, batch_size)

    @property
    def out_dim(self) -> int:
        return self.model.config.out_dim

    def embed_frame(self, frame: EventFrame) -> np.ndarray:
        """[N, out_dim] float32 for featurized sessions."""
        n = len(frame)
        out = np.empty((n, self.out_dim), np.float32)
        order = np.argsort(-frame.lengths, kind="stable")  # similar lengths share a batch: less padding
        for i in range(0, n, self.batch_size):
            rows = order[i : i + self.batch_size]
            batch = collate(frame, rows).to(self.device)
            out[rows] = self.model.embed(batch).float().cpu().numpy()
        return out

    def embed_sessions(self, sessions: pa.Table | pa.RecordBatch) -> np.ndarray:
        """[N, out_dim] for a table with an `events` column (schema.SESSIONS)."""
        return self.embed_frame(self.featurizer.frame(sessions))

    def embed_one(self, events: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """[out_dim] for one session given as event dicts (SESSION_EVENT fields; ts a datetime,
        ISO string or microseconds since the epoch). The low-latency path: no Arrow."""
        return self.embed_many([events])[0]

    def embed_many(self, sessions: Sequence[Sequence[Mapping[str, Any]]]) -> np.ndarray:
        """[N, out_dim] for a few sessions given as lists of event dicts (see `embed_one`)."""
        return self.embed_frame(self.featurizer.frame_rows(sessions))

    def embeddings_batch(self, sessions: pa.Table | pa.RecordBatch) -> pa.RecordBatch:
        """`schema.EMBEDDINGS` rows for a chunk of sessions."""
        vectors = self.embed_sessions(sessions)
        ids = sessions.column("session_id")
        ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        table = embeddings_table(ids, vectors, self.model_version)
        return table.combine_chunks().to_batches()[0] if len(table) else EMBEDDINGS.empty_table().to_batches()[0]


EmbedStats = StepStats  # sessions, seconds, out (clickintent/filestep.py)


def embed_file(
    sessions: str | Path,
    bundle: str | Path,
    out: str | Path,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    chunk_rows: int = 16_384,
    text_cache: str | Path | None = None,
    progress: bool = False,
) -> EmbedStats:
    """Stream sessions.parquet (a file or a directory of parts) into one embeddings.parquet file."""
    embedder = Embedder.from_bundle(bundle, device=device, text_cache=text_cache, batch_size=batch_size)
    return map_file(sessions, ["session_id", "events"], embedder.embeddings_batch, EMBEDDINGS, out,
                    chunk_rows=chunk_rows, progress=progress, desc="embed")  # fmt: skip

