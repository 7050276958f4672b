"""Cut sessions before the first event whose page matches a pattern (default: the first `/apply/` page).

To predict what a visitor will apply for, a model may only see the visit *before* the application
starts, or the answer is in its input (docs/SIMULATOR.md, "Conversions"). `cut_sessions` keeps each
session's events up to (not including) its first matching event, updates `n_events` and `end`, and drops
sessions left empty (a visit that began on an application page). Vectorised over the flattened events:
no Python loop per session. Left out: cutting after an event, or at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DEFAULT_PATTERN = "/apply/"


@dataclass
class CutReport:
    sessions_in: int
    sessions_out: int
    sessions_cut: int  # kept, but shortened
    sessions_dropped: int  # nothing left before the first match
    events_in: int
    events_out: int

    def lines(self) -> list[str]:
        return [
            f"sessions in {self.sessions_in:,}: {self.sessions_out:,} out ({self.sessions_cut:,} shortened), "
            f"{self.sessions_dropped:,} dropped (they began on a matching page)",
            f"events in {self.events_in:,}, out {self.events_out:,}",
        ]


def cut_sessions(sessions: pa.Table, pattern: str = DEFAULT_PATTERN) -> tuple[pa.Table, CutReport]:
    """(cut table, report) for a table with the SESSIONS columns; `pattern` is a regex on `page`."""
    table = sessions.combine_chunks()
    events = table.column("events").chunk(0) if table.num_rows else pa.array([], table.schema.field("events").type)
    n = table.num_rows
    offsets = events.offsets.to_numpy()
    flat = events.flatten()
    total = len(flat)
    lengths = np.diff(offsets)
    pages = flat.field("page")
    match = pc.fill_null(pc.match_substring_regex(pages, pattern), False).to_numpy(zero_copy_only=False)
    parents = np.repeat(np.arange(n), lengths)
    position = np.arange(total) - offsets[:-1][parents]
    first = lengths.copy()
    np.minimum.at(first, parents[match], position[match])
    keep = position < first[parents]
    new_offsets = np.concatenate([[0], np.cumsum(first)]).astype(np.int32)
    kept_events = flat.filter(pa.array(keep))
    new_events = pa.ListArray.from_arrays(pa.array(new_offsets), kept_events, type=events.type)
    last_ts = kept_events.field("ts")
    ends = table.column("end").to_numpy()
    has = first > 0
    end_idx = new_offsets[1:][has] - 1
    new_end = ends.copy()
    new_end[has] = last_ts.to_numpy(zero_copy_only=False)[end_idx] if len(end_idx) else new_end[has]
    out = table.set_column(table.schema.get_field_index("events"), table.schema.field("events"), new_events)
    out = out.set_column(
        out.schema.get_field_index("n_events"), out.schema.field("n_events"), pa.array(first.astype(np.int32))
    )
    out = out.set_column(
        out.schema.get_field_index("end"), out.schema.field("end"), pa.array(new_end, out.schema.field("end").type)
    )
    out = out.filter(pa.array(has))
    report = CutReport(
        sessions_in=n,
        sessions_out=int(has.sum()),
        sessions_cut=int(((first < lengths) & has).sum()),
        sessions_dropped=int((~has).sum()),
        events_in=total,
        events_out=int(first.sum()),
    )
    return out, report
