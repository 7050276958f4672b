"""Import presets: `ingest --preset ga4|snowplow|segment|rudderstack|adobe|posthog`.

Each preset maps one analytics tool's export onto the events contract (the login link included), so a
team ingests what it already has with no --map; --map still overrides any field. The mapping runs inside
`transform_batch` (`apply_preset`), on DuckDB and Spark alike; `presets.readers` reads the exports'
own file shapes (Snowplow's and Adobe's headerless TSVs, large NDJSON exports). docs/IMPORT.md has each
mapping, its sources and a worked example.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from clickintent.ingest.presets.adobe import ADOBE
from clickintent.ingest.presets.base import Preset
from clickintent.ingest.presets.ga4 import GA4
from clickintent.ingest.presets.posthog import POSTHOG
from clickintent.ingest.presets.segment import RUDDERSTACK, SEGMENT
from clickintent.ingest.presets.snowplow import SNOWPLOW

PRESETS: dict[str, Preset] = {p.name: p for p in (GA4, SNOWPLOW, SEGMENT, RUDDERSTACK, ADOBE, POSTHOG)}
PRESET_NAMES = tuple(PRESETS)

__all__ = ["PRESETS", "PRESET_NAMES", "Preset", "apply_preset", "get_preset", "preset_ts_unit"]


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESET_NAMES)}") from None


def preset_ts_unit(name: str, ts_unit: str) -> str:
    """The timestamp unit to parse a preset's `ts` with: the preset's own unless one was given."""
    return get_preset(name).ts_unit if ts_unit == "auto" else ts_unit


def apply_preset(
    batch: pa.RecordBatch, name: str, mapping: Mapping[str, str]
) -> tuple[pa.RecordBatch, np.ndarray | None]:
    """The raw batch in contract columns, and why the tool excludes each row (None where none)."""
    return get_preset(name).apply(batch, mapping)
