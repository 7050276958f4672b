"""Featurized sessions as the encoder reads them: `EventFrame` (all sessions, CSR) and `EventBatch` (padded).

`EventFrame` stores offsets and one flat int64 column per entry of `fields.COLUMNS`, plus the tables the
url and text columns index. `collate` cuts a padded `EventBatch` out of it, padded only to the longest
session (or sub-sequence) of the batch, and keeps only the table rows the batch uses. `EventBatch` holds
its per-event columns by name (`batch.ids["page"]`, or `batch.page`), so a new event field needs no new
code here. What it leaves out: computing the columns (featurize.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from clickintent.encoder.fields import COLUMNS, EVENT_FIELDS, FIRST, PAD

_TEXT = [f.name for f in EVENT_FIELDS if f.kind == "text"]  # columns that index the text table
_GAP = [f.name for f in EVENT_FIELDS if f.kind == "gap"]


@dataclass
class EventFrame:
    """Featurized sessions in CSR form: session i owns rows offsets[i]:offsets[i+1] of every column."""

    offsets: np.ndarray  # int64 [N+1]
    columns: dict[str, np.ndarray]  # COLUMNS -> int64 [E]
    url_tokens: np.ndarray  # int64 [U, K] hashed URL tokens per distinct page; 0 = padding
    text: np.ndarray  # float32 [S, text_dim]; row 0 = zeros (no text)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1


@dataclass
class EventBatch:
    """A padded batch: B sessions x T events (T = longest in the batch), plus the per-batch tables."""

    ids: dict[str, torch.Tensor]  # COLUMNS -> [B, T] (0 pad); url indexes url_tokens, title/query text
    lengths: torch.Tensor  # [B] events per session
    url_tokens: torch.Tensor  # [U, K]
    text: torch.Tensor  # [S, text_dim] float32

    def __getattr__(self, name: str) -> torch.Tensor:
        """A per-event column by name: batch.page, batch.event_type, ..."""
        ids = self.__dict__.get("ids")
        if ids is not None and name in ids:
            return ids[name]
        raise AttributeError(f"EventBatch has no column {name!r}")

    def replace(self, **columns: torch.Tensor) -> EventBatch:
        """This batch with some per-event columns swapped (e.g. page ids after page dropout)."""
        return EventBatch({**self.ids, **columns}, self.lengths, self.url_tokens, self.text)

    def take(self, rows: torch.Tensor) -> EventBatch:
        """Sessions `rows` of this batch (the tables stay whole: the rows index them)."""
        return EventBatch({k: v[rows] for k, v in self.ids.items()}, self.lengths[rows], self.url_tokens, self.text)

    def to(self, device: torch.device | str) -> EventBatch:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, non_blocking=True)

        ids = {k: move(v) for k, v in self.ids.items()}
        return EventBatch(ids, move(self.lengths), move(self.url_tokens), move(self.text))

    @property
    def padding(self) -> torch.Tensor:
        """[B, T] True where the position holds no event."""
        T = self.page.shape[1]
        return torch.arange(T, device=self.page.device)[None, :] >= self.lengths[:, None]


def collate(
    frame: EventFrame,
    rows: np.ndarray,
    starts: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
) -> EventBatch:
    """Sessions `rows` of `frame` as a padded batch; `starts`/`lengths` cut sub-sequences instead."""
    rows = np.asarray(rows, np.int64)
    full = frame.lengths[rows]
    starts = np.zeros_like(rows) if starts is None else np.asarray(starts, np.int64)
    lengths = full if lengths is None else np.asarray(lengths, np.int64)
    T = int(lengths.max()) if len(lengths) else 0
    valid = np.arange(T)[None, :] < lengths[:, None]  # [B, T]
    idx = np.where(valid, frame.offsets[rows][:, None] + starts[:, None] + np.arange(T)[None, :], 0)
    cols = {}
    for name in COLUMNS:
        col = frame.columns[name]
        cols[name] = np.where(valid, col[idx], PAD) if col.size else np.zeros((len(rows), T), np.int64)
    for name in _GAP if T else []:
        cols[name][:, 0] = np.where(lengths > 0, FIRST, PAD)  # a sub-sequence starts afresh
    # Keep only the table rows this batch uses, so the model projects S << all strings.
    url_rows, url_idx = np.unique(cols["url"], return_inverse=True)
    text_rows, text_idx = np.unique(np.concatenate([cols[name] for name in _TEXT]), return_inverse=True)
    cols["url"] = url_idx.reshape(cols["url"].shape)
    for i, part in enumerate(np.split(text_idx.reshape(len(_TEXT) * len(rows), T), len(_TEXT))):
        cols[_TEXT[i]] = part
    return EventBatch(
        {k: torch.from_numpy(np.ascontiguousarray(v, np.int64)) for k, v in cols.items()},
        lengths=torch.from_numpy(lengths.copy()),
        url_tokens=torch.from_numpy(frame.url_tokens[url_rows]),
        text=torch.from_numpy(frame.text[text_rows]),
    )
