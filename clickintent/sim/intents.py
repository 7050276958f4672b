"""The latent intents of the simulated world: why a visitor came, and how that shows in behaviour.

Each intent is a compact spec that `world.py` compiles into a Markov chain over page groups (landing
groups, where the journey dwells, when it ends) plus its own dwell,
device, referrer and search-query profiles and the products it is about. Who has which intent depends on
the person's segment, customer status and a few holdings (`intent_holding_keys`), nothing else, so the
placebo world stays a clean experiment. Intent names never appear in the events.

The intents are data: `data/intents.json` (package data), one object per intent whose keys are the fields
of `IntentSpec` (a field left out takes its default). Shopping intents land on product groups from search
engines and affiliates; servicing intents come direct, go through login and dwell briefly; research
intents read calculators and articles.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet")
REFERRERS: tuple[str, ...] = ("direct", "organic", "paid", "email", "social", "affiliate")
DATA_FILE = Path(__file__).parent / "data" / "intents.json"


@dataclass(frozen=True)
class IntentSpec:
    name: str  # the truth label (never written to events)
    description: str  # one line for docs and taxonomy evaluation
    share: float  # base weight in the intent mix
    entry: Mapping[str, float]  # group -> weight of landing there
    groups: Mapping[str, float]  # group -> weight of moving there on each step
    device: Mapping[str, float]  # DEVICES -> weight
    referrer: Mapping[str, float]  # REFERRERS -> weight
    queries: tuple[str, ...]  # on-site search and search-engine text
    products: Mapping[str, float] = field(default_factory=dict)  # product -> weight (tiles, applications)
    stop: float = 0.18  # chance the session ends after any page
    stay: float = 0.3  # chance the next page is in the same group
    dwell_s: float = 30.0  # median seconds on a page of kind 'product'
    search: float = 1.0  # multiplier on the weight of the on-site search group
    segments: Mapping[str, float] = field(default_factory=dict)  # segment -> share multiplier
    holdings: Mapping[str, float] = field(default_factory=dict)  # held product -> share multiplier
    customer: float = 1.0  # share multiplier for customers (servicing intents are mostly theirs)


def _spec(row: dict[str, Any]) -> IntentSpec:
    """One intent of the data file: mappings become read-only, lists tuples; unknown keys fail."""
    known = {f.name for f in fields(IntentSpec)}
    if unknown := set(row) - known:
        raise ValueError(f"{DATA_FILE}: intent {row.get('name')!r} has unknown fields {sorted(unknown)}")
    values: dict[str, Any] = {
        k: MappingProxyType(dict(v)) if isinstance(v, dict) else tuple(v) if isinstance(v, list) else v
        for k, v in row.items()
    }
    return IntentSpec(**values)


INTENTS: tuple[IntentSpec, ...] = tuple(
    _spec(row) for row in json.loads(DATA_FILE.read_text(encoding="utf-8"))["intents"]
)
INTENT_NAMES: tuple[str, ...] = tuple(i.name for i in INTENTS)


def intent_holding_keys(intents: tuple[IntentSpec, ...] = INTENTS) -> tuple[str, ...]:
    """The products whose holding changes the intent mix (sorted): the placebo test stratifies on them."""
    return tuple(sorted({p for i in intents for p in i.holdings}))
