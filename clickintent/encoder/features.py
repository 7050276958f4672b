"""Featurizer: the `events` lists of sessions.parquet -> the integer and text tensors the encoder reads.

For every field of `fields.EVENT_FIELDS` it derives the ids its kind says: a page id (known pages from the
vocabulary, every other page hashed into OOV buckets) with the bag of URL path tokens of the page
(hashed), title and search-query rows in a table of text vectors, the categories (event type, device),
log2-bucketed durations (dwell) and time since the previous event, and the referrer class (direct /
search / email / social / internal / other). An event arriving from a search engine without an on-site
query takes the engine's search words (`?q=`) as its query text. URL reading is clickintent.urls.

Two front-ends share one featurizing pass: `frame_events` (Arrow columns, the batch path) and
`frame_rows` (event dicts, the service's low-latency path) each dictionary-encode a chunk's columns
(`_Chunk`: codes per event and the distinct values), and `Featurizer._frame` maps every distinct value
once (remembered across chunks) and gathers the ids with vectorised passes. What it leaves out:
re-sorting events (sessions arrive ordered by `ts`), and any learning (vocab.py only counts).
The names other modules import from here (Vocab, EventBatch, collate, ...) are re-exported.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clickintent.cache import BoundedCache, object_bytes
from clickintent.encoder.batches import EventBatch, EventFrame, collate
from clickintent.encoder.fields import COLUMNS, EVENT_FIELDS, FIRST, PAD, UNK, EventField, stable_hash, time_bucket
from clickintent.encoder.text import TextVectors
from clickintent.encoder.vocab import Vocab, flat_events
from clickintent.urls import REFERRER_CLASSES, referrer_kind, search_terms, site, url_tokens

__all__ = [
    "COLUMNS", "FIRST", "PAD", "REFERRER_CLASSES", "UNK", "EventBatch", "EventFrame", "Featurizer", "Vocab",
    "collate", "referrer_kind", "search_terms", "stable_hash", "time_bucket", "url_tokens",
]  # fmt: skip

INTERNAL = 1 + REFERRER_CLASSES.index("internal")
_STRINGS = sorted({"url", *(f.source for f in EVENT_FIELDS if f.kind not in ("duration", "gap"))})
_NUMBERS = sorted({f.source for f in EVENT_FIELDS if f.kind in ("duration", "gap")})


@dataclass
class _Chunk:
    """A chunk of events, dictionary-encoded by a front-end: what `Featurizer._frame` reads."""

    offsets: np.ndarray  # int64 [N+1]: session i owns events offsets[i]:offsets[i+1]
    strings: dict[str, tuple[np.ndarray, list[Any]]]  # source -> (codes [E], 0 = null, i = values[i-1]; values)
    numbers: dict[str, tuple[np.ndarray, np.ndarray]]  # source -> (int64 values [E], null mask [E])


def _codes(arr: pa.Array) -> tuple[np.ndarray, list[Any]]:
    """Dictionary-encode an Arrow column: (codes [E] with 0 = null and i = uniques[i-1], uniques)."""
    enc = pc.dictionary_encode(arr)
    codes = pc.fill_null(pc.add(enc.indices.cast(pa.int64()), 1), 0).to_numpy(zero_copy_only=False)
    return codes, enc.dictionary.to_pylist()


def _encode(values: list[Any]) -> tuple[np.ndarray, list[Any]]:
    """`_codes` for a Python list."""
    index: dict[Any, int] = {}
    codes = [0 if v is None else index.setdefault(v, len(index) + 1) for v in values]
    return np.array(codes, np.int64), list(index)


def _lut(values: list[Any], ids: Callable[[Any], int], null: int = PAD, strip: bool = False) -> np.ndarray:
    """Look-up table from codes to ids: [null, ids(v) for each distinct v] (v stripped of spaces if `strip`)."""
    return np.array([null] + [ids(v.strip() if strip else v) for v in values], np.int64)


def _dtype(source: str) -> type:
    """Timestamps stay exact int64 microseconds; durations may arrive as floats."""
    return np.int64 if source == "ts" else np.float64


CACHE_BYTES = 32 << 20  # per cache of a Featurizer (pages, referrers, URL hosts)


def _page_bytes(page: str, value: tuple[int, int, list[int]]) -> int:
    return object_bytes(page, value) + 2 * 32 + sys.getsizeof(value[2]) + 32 * len(value[2])  # ints: <= 32 B


def _referrer_bytes(referrer: str, value: tuple[int, str, str]) -> int:
    return object_bytes(referrer, value) + 32 + sys.getsizeof(value[1]) + sys.getsizeof(value[2])


class Featurizer:
    """Turns session event lists into an `EventFrame` using a `Vocab` and a text-vector cache."""

    def __init__(
        self, vocab: Vocab, text: TextVectors, cache_limit: int = 1_000_000, cache_bytes: int = CACHE_BYTES
    ) -> None:
        if text.name != vocab.text_model:
            raise ValueError(f"text vectors come from {text.name!r} but the vocab needs {vocab.text_model!r}")
        self.vocab = vocab
        self.text = text
        self.cache_limit = cache_limit
        self._page_index = {p: i + 1 for i, p in enumerate(vocab.pages)}
        self._categories = {name: {v: i + 2 for i, v in enumerate(known)} for name, known in vocab.categories.items()}
        # Per distinct string, each bounded by entries and bytes (keys are client text: clickintent.cache)
        self._pages: BoundedCache[str, tuple[int, int, list[int]]] = BoundedCache(
            cache_limit, cache_bytes, _page_bytes
        )  # page -> (id, bucket id, url tokens)
        self._referrers: BoundedCache[str, tuple[int, str, str]] = BoundedCache(
            cache_limit, cache_bytes, _referrer_bytes
        )  # referrer -> (class id, site, search terms)
        self._hosts: BoundedCache[str, str] = BoundedCache(cache_limit, cache_bytes)  # url -> site

    # --- per distinct string ----------------------------------------------------------------------

    def _page(self, page: str) -> tuple[int, int, list[int]]:
        got = self._pages.get(page)
        if got is None:
            v = self.vocab
            bucket = 1 + len(v.pages) + stable_hash(page) % v.n_page_buckets
            tokens = [1 + stable_hash(t) % (v.n_url_buckets - 1) for t in url_tokens(page, v.max_url_tokens)]
            got = self._pages.put(page, (self._page_index.get(page, bucket), bucket, tokens))
        return got

    def page_id(self, page: str) -> int:
        """The id the model sees for `page` (its own id when known, else its OOV bucket)."""
        return self._page(page)[0]

    def _referrer(self, referrer: str) -> tuple[int, str, str]:
        got = self._referrers.get(referrer)
        if got is None:
            kind = referrer_kind(referrer)
            terms = search_terms(referrer) if kind == "search" else ""
            got = self._referrers.put(referrer, (1 + REFERRER_CLASSES.index(kind), site(referrer), terms))
        return got

    def _url_site(self, url: str) -> str:
        got = self._hosts.get(url)
        if got is None:
            got = self._hosts.put(url, site(url))
        return got

    # --- the two front-ends -----------------------------------------------------------------------

    def frame(self, sessions: pa.Table | pa.RecordBatch) -> EventFrame:
        """Featurize the `events` column of `sessions` (any other columns are ignored)."""
        return self.frame_events(sessions.column("events"))

    def frame_events(self, column: pa.ChunkedArray | pa.Array) -> EventFrame:
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        v = self.vocab
        lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        events = flat_events(arr)
        if (lengths > v.max_events).any():  # keep the last max_events events of long sessions
            ends = np.cumsum(lengths)
            pos_from_end = np.repeat(ends, lengths) - np.arange(ends[-1] if len(ends) else 0)
            events = events.filter(pa.array(pos_from_end <= v.max_events))
            lengths = np.minimum(lengths, v.max_events)
        numbers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in _NUMBERS:
            col = events.field(name)
            col = col.cast(pa.int64()) if name == "ts" else col  # timestamps in microseconds
            values = pc.fill_null(col, 0).to_numpy(zero_copy_only=False).astype(_dtype(name))
            numbers[name] = values, pc.is_null(col).to_numpy(zero_copy_only=False)
        strings = {name: _codes(events.field(name)) for name in _STRINGS}
        return self._frame(_Chunk(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), strings, numbers))

    def frame_rows(self, sessions: Sequence[Sequence[Mapping[str, Any]]]) -> EventFrame:
        """Featurize sessions given as lists of event dicts (SESSION_EVENT fields; `ts` a datetime, an ISO
        string or microseconds since the epoch). Plain Python, no Arrow: the low-latency path for a few
        sessions (the service); the same `_frame` as `frame_events` does the rest."""
        events = [ev for evs in sessions for ev in list(evs)[-self.vocab.max_events :]]
        lengths = [min(len(evs), self.vocab.max_events) for evs in sessions]
        numbers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in _NUMBERS:
            raw = [_micros(ev.get(name)) if name == "ts" else ev.get(name) for ev in events]
            null = np.array([x is None for x in raw], bool)
            numbers[name] = np.array([0 if x is None else x for x in raw], _dtype(name)), null
        strings = {name: _encode([ev.get(name) for ev in events]) for name in _STRINGS}
        return self._frame(_Chunk(np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]), strings, numbers))

    # --- one featurizing pass ---------------------------------------------------------------------

    def _frame(self, chunk: _Chunk) -> EventFrame:
        """The ids of every field of EVENT_FIELDS for a dictionary-encoded chunk (see the module doc)."""
        v = self.vocab
        cols: dict[str, np.ndarray] = {}
        strings: dict[str, int] = {}  # distinct texts -> row of the text table
        url_tok = np.zeros((1, v.max_url_tokens), np.int64)
        for f in EVENT_FIELDS:
            if f.kind == "page":
                url_tok = self._page_ids(f, chunk, cols)
            elif f.kind == "text":
                codes, uniq = chunk.strings[f.source]
                cols[f.name] = _lut(uniq, lambda s: _text_row(strings, s), strip=True)[codes]
            elif f.kind == "category":
                codes, uniq = chunk.strings[f.source]
                known = self._categories[f.name]
                cols[f.name] = _lut(uniq, lambda s: known.get(s.lower(), UNK), null=UNK)[codes]  # noqa: B023
            elif f.kind == "duration":
                ms, null = chunk.numbers[f.source]
                cols[f.name] = time_bucket(np.where(null, -1.0, ms), v.n_time_buckets)
            elif f.kind == "gap":
                cols[f.name] = time_bucket(_gaps(chunk.offsets, *chunk.numbers[f.source]), v.n_time_buckets)
            elif f.kind == "referrer":
                cols[f.name] = self._referrer_ids(f, chunk, cols, strings)
        text = np.zeros((len(strings) + 1, v.text_dim), np.float32)
        if strings:
            text[1:] = self.text.lookup(list(strings))
        return EventFrame(offsets=chunk.offsets, columns=cols, url_tokens=url_tok, text=text)

    def _page_ids(self, f: EventField, chunk: _Chunk, cols: dict[str, np.ndarray]) -> np.ndarray:
        """Page id, OOV bucket and URL-token row per event (into cols); returns the URL-token table."""
        codes, uniq = chunk.strings[f.source]
        info = [self._page(p) if p else (UNK, UNK, []) for p in uniq]
        cols[f.name] = _lut(info, lambda i: i[0])[codes]
        cols["page_bucket"] = _lut(info, lambda i: i[1])[codes]
        cols["url"] = codes
        url_tok = np.zeros((len(uniq) + 1, self.vocab.max_url_tokens), np.int64)
        for row, (_, _, toks) in enumerate(info, start=1):
            url_tok[row, : len(toks)] = toks
        return url_tok

    def _referrer_ids(
        self, f: EventField, chunk: _Chunk, cols: dict[str, np.ndarray], strings: dict[str, int]
    ) -> np.ndarray:
        """Referrer class per event; 'internal' where the referrer's site is the event URL's site. An
        external search's words become the query text of an event without one (added to `strings`)."""
        codes, uniq = chunk.strings[f.source]
        ref = [self._referrer(r) if r else (1, "", "") for r in uniq]
        kind = _lut(ref, lambda r: r[0], null=1)[codes]  # null -> direct
        sites: dict[str, int] = {"": 0}
        ref_site = _lut(ref, lambda r: sites.setdefault(r[1], len(sites)))[codes]
        ucodes, uurls = chunk.strings["url"]
        url_site = _lut(uurls, lambda u: sites.setdefault(self._url_site(u or ""), len(sites)))[ucodes]
        internal = (ref_site > 0) & (ref_site == url_site)
        terms = _lut(ref, lambda r: _text_row(strings, r[2]))[codes]
        cols["query"] = np.where((cols["query"] > 0) | internal, cols["query"], terms)
        return np.where(internal, INTERNAL, kind)


def _text_row(strings: dict[str, int], text: str) -> int:
    """Row of `text` in the chunk's text table (added if new); 0 for no text."""
    return strings.setdefault(text, len(strings) + 1) if text else 0


def _gaps(offsets: np.ndarray, ts: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Milliseconds since the previous event of the session; -1 (bucket FIRST) for a session's first event
    and where this or the previous event has no time."""
    n = int(offsets[-1])
    gap_ms = np.full(n, -1.0)
    if n > 1:
        gap_ms[1:] = np.maximum((ts[1:] - ts[:-1]) / 1000.0, 0.0)
    lengths = np.diff(offsets)
    gap_ms[offsets[:-1][lengths > 0]] = -1.0
    if null.any():
        gap_ms[null | np.concatenate([[False], null[:-1]])] = -1.0
    return gap_ms


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(ts: Any) -> int | None:
    """Microseconds since the epoch from a datetime (naive = UTC), an ISO string or an int."""
    if ts is None:
        return None
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return (ts - _EPOCH) // timedelta(microseconds=1)
    return int(ts)
