"""What the distilled classifier reads per session: its embedding, and optionally its mean page-text vector.

`inputs` names the choice, stored in the bundle's classifier.json:
- `embedding`: the session embedding alone (every bundle written before the key existed);
- `embedding+text`: the embedding, then the mean of the text vectors (MiniLM, or the hashing fallback: the
  bundle's text model) of the session's page titles and search queries.

The text mean is read from the `EventFrame` the encoder's featurizer already builds (`EventFrame.text`, the
rows the events' text columns index; row 0 is "no text"), so the batch labeller, the Spark job and the
service compute it from the same frame the encoder reads, for the same events (the last `max_events`): the
vectors gathered and added per session for a few sessions, a sparse (sessions x text rows) count matrix times
the text table for a chunk (the two agree to float rounding). Every non-empty title and query of every
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


DENSE_LIMIT = 1 << 20  # text-vector floats gathered at most for the dense path (a few sessions: the service)


def session_text_means(frame: EventFrame) -> np.ndarray:
    """[N, text_dim] float32: per session, the mean text vector of its events' titles and queries."""
    n, dim = len(frame), frame.text.shape[1]
    rows = _text_rows(frame)
    session = np.repeat(np.arange(n), frame.lengths)[:, None].repeat(rows.shape[1], axis=1)
    keep = rows > 0
    who, which = session[keep], rows[keep]  # in session order
    k = np.bincount(who, minlength=n)
    sums = np.zeros((n, dim), np.float32)
    if len(which) * dim <= DENSE_LIMIT:  # gather and add up per session: no sparse matrix for a request
        if len(which):
            present = np.flatnonzero(k)
            sums[present] = np.add.reduceat(frame.text[which], np.concatenate([[0], np.cumsum(k[present])[:-1]]))
    else:  # a (sessions x text rows) count matrix times the text table: no [entries, dim] copy
        from scipy import sparse

        counts = sparse.csr_matrix((np.ones(len(which), np.float32), (who, which)), shape=(n, frame.text.shape[0]))
        sums = np.asarray(counts @ frame.text, np.float32).reshape(n, dim)
    return sums / np.maximum(k, 1).astype(np.float32)[:, None]


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
