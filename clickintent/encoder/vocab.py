"""The vocabulary: everything that turns events into ids, counted from the training split, saved as
vocab.json in the bundle.

It holds the known pages (the rest share OOV hash buckets), the known values of every `category` field of
`fields.EVENT_FIELDS`, and the featurization sizes. vocab.json keeps one flat key per category field
(`event_types`, `devices`, ...), so bundles written before the field table load unchanged.
What it leaves out: applying it (featurize.py) and any learning; `Vocab.build` only counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from clickintent.encoder.fields import CATEGORIES, EventField
from clickintent.encoder.text import MINILM_NAME


@dataclass
class Vocab:
    pages: list[str]  # known pages; page id = 1 + index
    categories: dict[str, list[str]]  # category field name -> known values; id = 2 + index (0 pad, 1 unknown)
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

    def n_ids(self, field: EventField) -> int:
        """Ids of a category field: padding, unknown and the known values."""
        return 2 + len(self.categories[field.name])

    @property
    def event_types(self) -> list[str]:
        return self.categories["event_type"]

    @property
    def devices(self) -> list[str]:
        return self.categories["device"]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        cats = data.pop("categories")
        return {"pages": data.pop("pages"), **{f.vocab_key: cats[f.name] for f in CATEGORIES}, **data}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Vocab:
        if data.get("version", 1) != 1:
            raise ValueError(f"vocab.json version {data.get('version')} is not supported (expected 1)")
        data = dict(data)
        missing = [f.vocab_key for f in CATEGORIES if f.vocab_key not in data]
        if missing:
            raise ValueError(f"vocab.json has no {', '.join(missing)} (written before those event fields: retrain)")
        categories = {f.name: list(data.pop(f.vocab_key)) for f in CATEGORIES}
        return cls(categories=categories, **data)

    @classmethod
    def build(
        cls,
        sessions: pa.Table | pa.RecordBatch,
        *,
        min_page_count: int = 2,
        max_pages: int = 50_000,
        **options: Any,
    ) -> Vocab:
        """Count pages and the values of every category field in `sessions` (the training split only)."""
        events = flat_events(sessions.column("events"))
        pages = _value_counts(events.field("page"))
        kept = sorted((p for p, c in pages.items() if c >= min_page_count), key=lambda p: (-pages[p], p))
        categories = {
            f.name: sorted(set(_value_counts(pc.utf8_lower(events.field(f.source)))) | set(f.always))
            for f in CATEGORIES
        }
        return cls(pages=kept[:max_pages], categories=categories, **options)


def flat_events(column: pa.ChunkedArray | pa.Array) -> pa.StructArray:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return arr.flatten()


def _value_counts(arr: pa.Array) -> Counter[str]:
    counts: Counter[str] = Counter()
    for item in pc.value_counts(arr).to_pylist():
        if item["values"] is not None and item["values"] != "":
            counts[item["values"]] += item["counts"]
    return counts
