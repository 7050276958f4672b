"""What the distilled classifier reads per session: its embedding, and optionally its mean page-text vector.

`inputs` names the choice, stored in the bundle's classifier.json:
- `embedding`: the session embedding alone (every bundle written before the key existed);
- `embedding+text`: the embedding, then the mean of the text vectors (MiniLM, or the hashing fallback: the
  bundle's text model) of the session's page titles and search queries.

The text mean is read from the `EventFrame` the encoder's featurizer already builds (`EventFrame.text`, the
rows the events' text columns index; row 0 is "no text"), so the batch labeller, the Spark job and the
service compute it from the same frame the encoder reads, for the same events (the last `max_events`): one
sparse (sessions x text rows) count matrix times the text table. Every non-empty title and query of every
event counts once (a page seen twice weighs twice); a session with no text gets zeros.
`occluded_text_means` gives the service's explanation copies the mean without the event they hide.
Left out: weighting by dwell, normalising the mean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from clickintent.encoder.fields import EVENT_FIELDS

if TYPE_CHECKING:  # the classifier imports this module: no torch at import time
    import pyarrow as pa

    from clickintent.encoder.batches import EventFrame
    from clickintent.encoder.features import Featurizer

Inputs = Literal["embedding", "embedding+text"]
INPUTS: tuple[Inputs, ...] = ("embedding", "embedding+text")
EMBEDDING, EMBEDDING_TEXT = INPUTS
TEXT_COLUMNS = tuple(f.name for f in EVENT_FIELDS if f.kind == "text")  # title, query


def check_inputs(inputs: str) -> Inputs:
    if inputs not in INPUTS:
        raise ValueError(f"unknown classifier inputs {inputs!r}; expected one of {', '.join(INPUTS)}")
    return inputs


def uses_text(inputs: str) -> bool:
    return check_inputs(inputs) == EMBEDDING_TEXT


def _text_rows(frame: EventFrame) -> np.ndarray:
    """[E, len(TEXT_COLUMNS)] rows of `frame.text` per event (0: none)."""
    return np.stack([frame.columns[c] for c in TEXT_COLUMNS], axis=1)


def session_text_means(frame: EventFrame) -> np.ndarray:
    """[N, text_dim] float32: per session, the mean text vector of its events' titles and queries."""
    from scipy import sparse

    n, dim = len(frame), frame.text.shape[1]
    rows = _text_rows(frame)
    session = np.repeat(np.arange(n), frame.lengths)[:, None].repeat(rows.shape[1], axis=1)
    keep = rows > 0
    counts = sparse.csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (session[keep], rows[keep])), shape=(n, frame.text.shape[0])
    )
    sums = np.asarray(counts @ frame.text, np.float32).reshape(n, dim)
    k = np.bincount(session[keep], minlength=n).astype(np.float32)
    return sums / np.maximum(k, 1)[:, None]


def text_means_by_session(featurizer: Featurizer, sessions: pa.Table) -> dict[str, np.ndarray]:
    """Session id -> text mean for a table with `session_id` and `events` (what `distill()` is given)."""
    means = session_text_means(featurizer.frame(sessions))
    return dict(zip(sessions.column("session_id").to_pylist(), means, strict=True))


def occluded_text_means(frame: EventFrame, i: int) -> np.ndarray:
    """[len_i, text_dim]: session i's text mean with each of its events left out in turn (zeros when
    nothing is left), as the service's leave-one-out explanation copies see it."""
    lo, hi = int(frame.offsets[i]), int(frame.offsets[i + 1])
    rows = _text_rows(frame)[lo:hi]
    per_event = frame.text[rows].sum(axis=1)  # [len_i, dim]: row 0 is zeros
    per_count = (rows > 0).sum(axis=1).astype(np.float32)
    rest = (per_event.sum(axis=0)[None, :] - per_event).astype(np.float32)
    left = per_count.sum() - per_count
    return rest / np.maximum(left, 1)[:, None]


def classifier_input(inputs: str, embeddings: np.ndarray, text_means: np.ndarray | None) -> np.ndarray:
    """The rows the classifier reads: the embeddings, followed by the text means when `inputs` says so."""
    if not uses_text(inputs):
        return embeddings
    if text_means is None:
        raise ValueError("this classifier reads the sessions' page text too (inputs embedding+text): give the text")
    if len(text_means) != len(embeddings):
        raise ValueError(f"{len(embeddings)} embeddings but {len(text_means)} text means")
    return np.concatenate([np.asarray(embeddings, np.float32), np.asarray(text_means, np.float32)], axis=1)
