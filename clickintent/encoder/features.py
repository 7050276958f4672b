"""Featurizer: the `events` lists of sessions.parquet -> the integer and text tensors the encoder reads.

Per event it derives: a page id (known pages from the vocabulary, every other page hashed into OOV
buckets), the bag of URL path tokens of the page (hashed), title and search-query rows in a table of text
vectors, event type, device, log2-bucketed dwell and time since the previous event, and the referrer
class (direct / search / email / social / internal / other). An event arriving from a search engine
without an on-site query takes the engine's search words (`?q=`) as its query text. Strings are mapped
once per distinct value per chunk (Arrow dictionary encoding) and remembered, so a chunk costs a few
vectorised passes.

Sessions are stored as `EventFrame` (CSR: offsets + one flat int64 column per field, plus the tables),
and `collate` cuts a padded `EventBatch` out of it, padded only to the longest session (or sub-sequence)
of the batch. What it leaves out: re-sorting events (sessions arrive ordered by `ts`), and any learning;
`Vocab.build` only counts.

Index conventions: 0 is padding everywhere; 1 is "missing / unknown" for categorical fields.
"""

from __future__ import annotations

import re
import sys
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from clickintent.cache import BoundedCache, object_bytes
from clickintent.encoder.text import MINILM_NAME, TextVectors
from clickintent.schema import KNOWN_EVENT_TYPES

PAD, UNK = 0, 1
FIRST = 1  # gap bucket of a session's (or a sub-sequence's) first event

REFERRER_CLASSES = ("direct", "search", "email", "social", "internal", "other")  # ids 1..6
SEARCH_ENGINES = ("google", "bing", "yahoo", "duckduckgo", "baidu", "yandex", "ecosia", "ask", "aol", "search")
EMAIL_HINTS = ("mail", "newsletter", "outlook", "email", "e-mail", "mailchimp", "sendgrid", "campaign")
SOCIAL_SITES = (
    "facebook", "fb.com", "instagram", "twitter", "t.co", "x.com", "linkedin", "lnkd.in", "reddit",
    "youtube", "tiktok", "pinterest", "snapchat", "whatsapp", "social",
)  # fmt: skip

FIELDS = ("page", "page_bucket", "url", "title", "query", "event_type", "device", "dwell", "gap", "referrer")

_SPLIT = re.compile(r"[-_.+~%,;:]+")


def stable_hash(text: str) -> int:
    """A hash that is the same in every process (Python's hash() is salted per process)."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def time_bucket(ms: np.ndarray, n_buckets: int) -> np.ndarray:
    """log2 buckets of 100 ms: 2 + min(n-1, floor(log2(1 + ms/100))); missing (negative) -> 1."""
    ms = np.asarray(ms, np.float64)
    b = np.floor(np.log2(1.0 + np.maximum(ms, 0.0) / 100.0))
    out = 2 + np.clip(b, 0, n_buckets - 1).astype(np.int64)
    return np.where(ms < 0, UNK, out)


def url_tokens(page: str, max_tokens: int) -> list[str]:
    """Tokens of a (normalised) URL: host, each path segment, the words inside segments, query keys."""
    if "/" not in page and "." not in page:
        return [f"key:{page}"]  # an opaque page key (e.g. a YOOCHOOSE item id)
    try:
        parts = urlsplit(page if "//" in page or page.startswith("/") else "//" + page)
        host = (parts.hostname or "").removeprefix("www.")
    except ValueError:  # e.g. a host redacted to "[EMAIL]": brackets mean IPv6 to urlsplit
        return [f"key:{page}"]
    tokens: list[str] = []
    if host:
        tokens.append(f"host:{host}")
    segments = [s for s in parts.path.lower().split("/") if s]
    for depth, seg in enumerate(segments):
        tokens.append(f"seg:{seg}")
        if depth == 0:
            tokens.append(f"top:{seg}")  # the site section, weighted a little more
        words = [w for w in _SPLIT.split(seg) if w]
        if len(words) > 1:
            tokens.extend(f"w:{w}" for w in words)
    if not segments:
        tokens.append("seg:/")
    for pair in parts.query.split("&"):
        if pair:
            tokens.append(f"q:{pair.split('=', 1)[0].lower()}")
    return tokens[:max_tokens]


def _hostname(url: str) -> str:
    """The lower-case host of a URL ('' for opaque keys and labels such as 'google')."""
    if "/" not in url and "." not in url:
        return ""
    try:
        host = urlsplit(url if "//" in url or url.startswith("/") else "//" + url).hostname or ""
    except ValueError:
        return ""
    return host.lower().removeprefix("www.")


def _host(url: str) -> str:
    """The site of a URL: a crude registered domain (last two labels, three for e.g. bank.co.uk)."""
    labels = _hostname(url).split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and len(labels[-2]) <= 3 else 2
    return ".".join(labels[-keep:])


SEARCH_TERM_PARAMS = ("q", "query", "p", "text", "wd", "search", "k")


def search_terms(referrer: str) -> str:
    """The search words in a search-engine referrer URL (`?q=...`), or ''."""
    try:
        query = urlsplit(referrer).query
    except ValueError:
        return ""
    for key, value in parse_qsl(query):
        if key.lower() in SEARCH_TERM_PARAMS and value.strip():
            return value.strip()
    return ""


def referrer_kind(referrer: str | None) -> str:
    """The external class of a referrer URL or label, without the internal check (see `_referrer_ids`)."""
    if referrer is None or not referrer.strip() or referrer.strip().lower() in ("direct", "none", "(direct)"):
        return "direct"
    text = referrer.strip().lower()
    host = _hostname(text) or text
    if "utm_medium=email" in text or any(h in host for h in EMAIL_HINTS):
        return "email"
    if any(s in host for s in SEARCH_ENGINES):
        return "search"
    if any(host == s or host.endswith("." + s) or s in host.split(".") for s in SOCIAL_SITES):
        return "social"
    return "other"


@dataclass
class Vocab:
    """Everything that turns events into ids; saved as vocab.json in the bundle."""

    pages: list[str]  # known pages; page id = 1 + index
    event_types: list[str]  # event type id = 2 + index (0 padding, 1 unknown)
    devices: list[str]  # device id = 2 + index
    n_page_buckets: int = 1024  # OOV hash buckets for pages not in `pages`
    n_url_buckets: int = 4096  # hash buckets for URL tokens (0 = padding)
    max_url_tokens: int = 16  # URL tokens kept per page
    n_time_buckets: int = 16  # log2 buckets of 100 ms for dwell and time gaps
    max_events: int = 64  # the last max_events events of a session are kept
    text_model: str = MINILM_NAME  # text encoder the model was trained with
    text_dim: int = 384
    version: int = 1

    @property
    def n_page_ids(self) -> int:
        return 1 + len(self.pages) + self.n_page_buckets

    @property
    def n_event_types(self) -> int:
        return 2 + len(self.event_types)

    @property
    def n_devices(self) -> int:
        return 2 + len(self.devices)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Vocab:
        if data.get("version", 1) != 1:
            raise ValueError(f"vocab.json version {data.get('version')} is not supported (expected 1)")
        return cls(**dict(data))

    @classmethod
    def build(
        cls,
        sessions: pa.Table | pa.RecordBatch,
        *,
        min_page_count: int = 2,
        max_pages: int = 50_000,
        **options: Any,
    ) -> Vocab:
        """Count pages, event types and devices in `sessions` (the training split only)."""
        events = _flat_events(sessions.column("events"))
        pages = _value_counts(events.field("page"))
        kept = sorted((p for p, c in pages.items() if c >= min_page_count), key=lambda p: (-pages[p], p))
        types = _value_counts(pc.utf8_lower(events.field("event_type")))
        devices = _value_counts(pc.utf8_lower(events.field("device")))
        return cls(
            pages=kept[:max_pages],
            event_types=sorted(set(types) | set(KNOWN_EVENT_TYPES)),
            devices=sorted(devices),
            **options,
        )


def _flat_events(column: pa.ChunkedArray | pa.Array) -> pa.StructArray:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return arr.flatten()


def _value_counts(arr: pa.Array) -> Counter[str]:
    counts: Counter[str] = Counter()
    for item in pc.value_counts(arr).to_pylist():
        if item["values"] is not None and item["values"] != "":
            counts[item["values"]] += item["counts"]
    return counts


def _codes(arr: pa.Array) -> tuple[np.ndarray, list[str | None]]:
    """Dictionary-encode: (codes [E] with 0 = null and i = uniques[i-1], uniques)."""
    enc = pc.dictionary_encode(arr)
    codes = pc.fill_null(pc.add(enc.indices.cast(pa.int64()), 1), 0).to_numpy(zero_copy_only=False)
    return codes, enc.dictionary.to_pylist()


@dataclass
class EventFrame:
    """Featurized sessions in CSR form: session i owns rows offsets[i]:offsets[i+1] of every column."""

    offsets: np.ndarray  # int64 [N+1]
    columns: dict[str, np.ndarray]  # FIELDS -> int64 [E]
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

    page: torch.Tensor  # [B, T] page id (0 pad)
    page_bucket: torch.Tensor  # [B, T] the page's OOV bucket id (for page dropout in training)
    url: torch.Tensor  # [B, T] row of url_tokens
    title: torch.Tensor  # [B, T] row of text
    query: torch.Tensor  # [B, T] row of text
    event_type: torch.Tensor  # [B, T]
    device: torch.Tensor  # [B, T]
    dwell: torch.Tensor  # [B, T] dwell bucket
    gap: torch.Tensor  # [B, T] time-since-previous bucket
    referrer: torch.Tensor  # [B, T] referrer class
    lengths: torch.Tensor  # [B] events per session
    url_tokens: torch.Tensor  # [U, K]
    text: torch.Tensor  # [S, text_dim] float32

    def to(self, device: torch.device | str) -> EventBatch:
        return EventBatch(**{k: v.to(device, non_blocking=True) for k, v in self.__dict__.items()})

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
    for name in FIELDS:
        col = frame.columns[name]
        cols[name] = np.where(valid, col[idx], PAD) if col.size else np.zeros((len(rows), T), np.int64)
    if T:
        cols["gap"][:, 0] = np.where(lengths > 0, FIRST, PAD)  # a sub-sequence starts afresh
    # Keep only the table rows this batch uses, so the model projects S << all strings.
    url_rows, url_idx = np.unique(cols["url"], return_inverse=True)
    text_rows, text_idx = np.unique(np.concatenate([cols["title"], cols["query"]]), return_inverse=True)
    cols["url"] = url_idx.reshape(cols["url"].shape)
    text_idx = text_idx.reshape(2 * len(rows), T)
    cols["title"], cols["query"] = text_idx[: len(rows)], text_idx[len(rows) :]
    return EventBatch(
        **{k: torch.from_numpy(np.ascontiguousarray(v, np.int64)) for k, v in cols.items()},
        lengths=torch.from_numpy(lengths.copy()),
        url_tokens=torch.from_numpy(frame.url_tokens[url_rows]),
        text=torch.from_numpy(frame.text[text_rows]),
    )


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
        self._types = {t: i + 2 for i, t in enumerate(vocab.event_types)}
        self._devices = {d: i + 2 for i, d in enumerate(vocab.devices)}
        # Per distinct string, each bounded by entries and bytes (keys are client text: clickintent.cache)
        self._pages: BoundedCache[str, tuple[int, int, list[int]]] = BoundedCache(
            cache_limit, cache_bytes, _page_bytes
        )  # page -> (id, bucket id, url tokens)
        self._referrers: BoundedCache[str, tuple[int, str, str]] = BoundedCache(
            cache_limit, cache_bytes, _referrer_bytes
        )  # referrer -> (class id, site, search terms)
        self._hosts: BoundedCache[str, str] = BoundedCache(cache_limit, cache_bytes)  # url -> host

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
            got = self._referrers.put(referrer, (1 + REFERRER_CLASSES.index(kind), _host(referrer), terms))
        return got

    def _url_host(self, url: str) -> str:
        got = self._hosts.get(url)
        if got is None:
            got = self._hosts.put(url, _host(url))
        return got

    # --- whole columns ----------------------------------------------------------------------------

    def frame(self, sessions: pa.Table | pa.RecordBatch) -> EventFrame:
        """Featurize the `events` column of `sessions` (any other columns are ignored)."""
        return self.frame_events(sessions.column("events"))

    def frame_events(self, column: pa.ChunkedArray | pa.Array) -> EventFrame:
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        v = self.vocab
        lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        events: pa.StructArray = arr.flatten()
        if (lengths > v.max_events).any():  # keep the last max_events events of long sessions
            ends = np.cumsum(lengths)
            pos_from_end = np.repeat(ends, lengths) - np.arange(ends[-1] if len(ends) else 0)
            events = events.filter(pa.array(pos_from_end <= v.max_events))
            lengths = np.minimum(lengths, v.max_events)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        n = int(offsets[-1])
        cols: dict[str, np.ndarray] = {}

        # page: id, OOV bucket and URL tokens per distinct page
        codes, uniq = _codes(events.field("page"))
        info = [self._page(p) if p else (UNK, UNK, []) for p in uniq]
        cols["page"] = np.array([PAD] + [i[0] for i in info], np.int64)[codes]
        cols["page_bucket"] = np.array([PAD] + [i[1] for i in info], np.int64)[codes]
        cols["url"] = codes
        url_tok = np.zeros((len(uniq) + 1, v.max_url_tokens), np.int64)
        for row, (_, _, toks) in enumerate(info, start=1):
            url_tok[row, : len(toks)] = toks

        # page title and search query: rows of one table of distinct strings
        strings: dict[str, int] = {}
        for name, source in (("title", "page_title"), ("query", "search_query")):
            codes, uniq = _codes(events.field(source))
            lut = np.zeros(len(uniq) + 1, np.int64)
            for i, s in enumerate(uniq, start=1):
                s = (s or "").strip()
                if s:
                    lut[i] = strings.setdefault(s, len(strings) + 1)
            cols[name] = lut[codes]
        # referrer class; an external search's words stand in for a missing search query
        cols["referrer"], terms = self._referrer_ids(events, strings)
        cols["query"] = np.where(cols["query"] > 0, cols["query"], terms)
        text = np.zeros((len(strings) + 1, v.text_dim), np.float32)
        if strings:
            text[1:] = self.text.lookup(list(strings))

        # categorical fields
        for name, table in (("event_type", self._types), ("device", self._devices)):
            codes, uniq = _codes(pc.utf8_lower(events.field(name)))
            lut = np.array([UNK] + [table.get(s or "", UNK) for s in uniq], np.int64)
            cols[name] = lut[codes]

        # dwell and time since the previous event, log-bucketed
        dwell = pc.fill_null(events.field("dwell_ms"), -1).to_numpy(zero_copy_only=False)
        cols["dwell"] = time_bucket(dwell, v.n_time_buckets)
        ts_arr = events.field("ts")
        ts = pc.fill_null(ts_arr.cast(pa.int64()), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        gap_ms = np.full(n, -1.0)  # negative = no previous event -> bucket FIRST
        if n > 1:
            gap_ms[1:] = np.maximum((ts[1:] - ts[:-1]) / 1000.0, 0.0)
        gap_ms[offsets[:-1][lengths > 0]] = -1.0
        if ts_arr.null_count:
            nulls = pc.is_null(ts_arr).to_numpy(zero_copy_only=False)
            gap_ms[nulls | np.concatenate([[False], nulls[:-1]])] = -1.0
        cols["gap"] = time_bucket(gap_ms, v.n_time_buckets)
        return EventFrame(offsets=offsets, columns=cols, url_tokens=url_tok, text=text)

    def _referrer_ids(self, events: pa.StructArray, strings: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """(referrer class per event, text row of its search words or 0); 'internal' where the referrer's
        site is the event URL's site. Search words are added to `strings`."""
        codes, uniq = _codes(events.field("referrer"))
        ref = [self._referrer(r) if r else (1, "", "") for r in uniq]
        kind = np.array([1] + [r[0] for r in ref], np.int64)[codes]  # null -> direct
        hosts: dict[str, int] = {"": 0}
        ref_host = np.array([0] + [hosts.setdefault(r[1], len(hosts)) for r in ref], np.int64)[codes]
        ucodes, uurls = _codes(events.field("url"))
        url_host = np.array([0] + [hosts.setdefault(self._url_host(u or ""), len(hosts)) for u in uurls])
        url_host = url_host[ucodes]
        internal = (ref_host > 0) & (ref_host == url_host)
        rows = [strings.setdefault(r[2], len(strings) + 1) if r[2] else 0 for r in ref]
        terms = np.array([0, *rows], np.int64)[codes]
        return np.where(internal, 1 + REFERRER_CLASSES.index("internal"), kind), np.where(internal, 0, terms)

    def frame_rows(self, sessions: Sequence[Sequence[Mapping[str, Any]]]) -> EventFrame:
        """Featurize sessions given as lists of event dicts (SESSION_EVENT fields; `ts` a datetime, an ISO
        string or microseconds since the epoch). Plain Python, no Arrow: the low-latency path for a few
        sessions (the service). Gives the same frame as `frame` (a test checks it)."""
        v = self.vocab
        sessions = [list(evs)[-v.max_events :] for evs in sessions]
        lengths = np.array([len(evs) for evs in sessions], np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        n = int(offsets[-1])
        cols = {name: np.zeros(n, np.int64) for name in FIELDS}
        url_rows: dict[str, int] = {}
        url_tok: list[list[int]] = [[]]
        strings: dict[str, int] = {}
        dwell = np.full(n, -1.0)
        gap = np.full(n, -1.0)
        i = 0
        for evs in sessions:
            prev: int | None = None
            for ev in evs:
                page = ev.get("page")
                if page is not None:
                    pid, bucket, toks = self._page(page) if page else (UNK, UNK, [])
                    cols["page"][i], cols["page_bucket"][i] = pid, bucket
                    row = url_rows.get(page)
                    if row is None:
                        row = url_rows[page] = len(url_tok)
                        url_tok.append(toks)
                    cols["url"][i] = row
                for name, source in (("title", "page_title"), ("query", "search_query")):
                    text = (ev.get(source) or "").strip()
                    if text:
                        cols[name][i] = strings.setdefault(text, len(strings) + 1)
                cols["event_type"][i] = self._types.get((ev.get("event_type") or "").lower(), UNK)
                cols["device"][i] = self._devices.get((ev.get("device") or "").lower(), UNK)
                if ev.get("dwell_ms") is not None:
                    dwell[i] = ev["dwell_ms"]
                ts = _micros(ev.get("ts"))
                if ts is not None and prev is not None:
                    gap[i] = max((ts - prev) / 1000.0, 0.0)
                prev = ts
                referrer = ev.get("referrer")
                kind, ref_site, terms = self._referrer(referrer) if referrer else (1, "", "")
                if ref_site and ref_site == self._url_host(ev.get("url") or ""):
                    kind, terms = 1 + REFERRER_CLASSES.index("internal"), ""
                cols["referrer"][i] = kind
                if terms and not cols["query"][i]:
                    cols["query"][i] = strings.setdefault(terms, len(strings) + 1)
                i += 1
        cols["dwell"] = time_bucket(dwell, v.n_time_buckets)
        cols["gap"] = time_bucket(gap, v.n_time_buckets)
        tokens = np.zeros((len(url_tok), v.max_url_tokens), np.int64)
        for row, toks in enumerate(url_tok):
            tokens[row, : len(toks)] = toks
        text = np.zeros((len(strings) + 1, v.text_dim), np.float32)
        if strings:
            text[1:] = self.text.lookup(list(strings))
        return EventFrame(offsets=offsets, columns=cols, url_tokens=tokens, text=text)


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
