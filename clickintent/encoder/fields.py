"""The event fields the encoder reads, declared once: the vocabulary, the batches, the featurizer, the
model's event embedding and the ONNX export all read `EVENT_FIELDS`.

To add an event field, add one `EventField` to `EVENT_FIELDS`. A field of kind `category` (a string with
a vocabulary of known values, counted from the training split) or `duration` (milliseconds, log2-bucketed)
needs nothing else: `Vocab.build` counts it, `vocab.json` and `encoder.json` store its values and size
under `vocab_key` and `n_<vocab_key>`, the featurizer maps it, `EventBatch` carries it, `EventEmbedding`
adds an embedding for it and the ONNX graph takes it as an input (as in pytorch-lifestream's
`TrxEncoder(embeddings={...})`). The other kinds (page, text, gap, referrer) need code of their own in
featurize.py, which is why there is one field of each. A bundle written before the new field is then
refused with a one-line reason (its vocabulary lacks the field); retrain it.

Index conventions: 0 is padding everywhere; 1 is "missing / unknown" for categorical fields.
What it leaves out: how each kind is computed (featurize.py) and embedded (model.py).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from clickintent.schema import KNOWN_EVENT_TYPES

PAD, UNK = 0, 1
FIRST = 1  # gap bucket of a session's (or a sub-sequence's) first event

KINDS = {
    "page": "page id: a known page or its OOV hash bucket; adds the columns page_bucket and url (URL tokens)",
    "text": "row of the batch's table of text vectors (0: no text)",
    "category": "2 + index into the vocabulary's known values (lower-cased); 1 unknown",
    "duration": "log2 bucket of 100 ms of a duration in milliseconds; 1 missing",
    "gap": "log2 bucket of the time since the previous event, read from `ts`; FIRST for the first event",
    "referrer": "referrer class (clickintent.urls.REFERRER_CLASSES; 'internal' when it is the event's site)",
}


@dataclass(frozen=True)
class EventField:
    name: str  # column of EventFrame/EventBatch, embedding of EventEmbedding, input of the ONNX graph
    kind: str  # one of KINDS
    source: str  # the SESSION_EVENT field it is read from
    vocab_key: str = ""  # category: the vocab.json key of its known values (encoder.json: "n_" + vocab_key)
    always: tuple[str, ...] = ()  # category: values kept in the vocabulary even when training never saw them


EVENT_FIELDS = (
    EventField("page", "page", "page"),
    EventField("title", "text", "page_title"),
    EventField("query", "text", "search_query"),  # an external search's words stand in when it is empty
    EventField("event_type", "category", "event_type", "event_types", tuple(KNOWN_EVENT_TYPES)),
    EventField("device", "category", "device", "devices"),
    EventField("dwell", "duration", "dwell_ms"),
    EventField("gap", "gap", "ts"),
    EventField("referrer", "referrer", "referrer"),
)
assert all(f.kind in KINDS for f in EVENT_FIELDS)

CATEGORIES = tuple(f for f in EVENT_FIELDS if f.kind == "category")
# per-event integer columns of EventFrame and EventBatch: the fields, and the page's derived columns
COLUMNS = tuple(c for f in EVENT_FIELDS for c in ((f.name, "page_bucket", "url") if f.kind == "page" else (f.name,)))
TABLES = ("url_tokens", "text")  # per-batch tables the url / text columns index
EMBEDDED = tuple(f for f in EVENT_FIELDS if f.kind != "text")  # one id embedding each (text is projected)


def stable_hash(text: str) -> int:
    """A hash that is the same in every process (Python's hash() is salted per process)."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def time_bucket(ms: np.ndarray, n_buckets: int) -> np.ndarray:
    """log2 buckets of 100 ms: 2 + min(n-1, floor(log2(1 + ms/100))); missing (negative) -> 1."""
    ms = np.asarray(ms, np.float64)
    b = np.floor(np.log2(1.0 + np.maximum(ms, 0.0) / 100.0))
    out = 2 + np.clip(b, 0, n_buckets - 1).astype(np.int64)
    return np.where(ms < 0, UNK, out)
