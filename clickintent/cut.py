"""Cut sessions before the first event whose page matches a pattern (default: the first `/apply/` page).

To predict what a visitor will apply for, a model may only see the visit *before* the application
starts, or the answer is in its input (docs/SIMULATOR.md, "Conversions"). `cut_sessions` keeps each
session's events up to (not including) its first matching event, updates `n_events` and `end`, and drops
sessions left empty (a visit that began on an application page).

A cut must leave no trace that tells a cut visit from one that ended by itself (docs/EVALUATION.md):
- the dwell on the last page (its last page view or search, and the events on that page after it) is
  unknown in *every* session, cut or not. Sessionize fills a missing dwell with the time to the next event,
  so in a cut visit the last page would carry the time until the removed application page, where a visit
  that ended by itself usually has none. When a prediction is made the time on the current page is not
  known anyway.
- a web session whose login was cut away loses its customer link (a web session is linked by its first
  login, so the link stays exactly when a login is kept).
Vectorised over the flattened events: no Python loop per session. Left out: cutting after an event, or
at a time.
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
    links_removed: int = 0  # web sessions whose only login was cut away

    def lines(self) -> list[str]:
        return [
            f"sessions in {self.sessions_in:,}: {self.sessions_out:,} out ({self.sessions_cut:,} shortened), "
            f"{self.sessions_dropped:,} dropped (they began on a matching page)",
            f"events in {self.events_in:,}, out {self.events_out:,}; the last page's dwell blanked in every visit, "
            f"{self.links_removed:,} customer links removed with the login they came from",
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
    kept_events = _blank_last_dwell(flat.filter(pa.array(keep)), new_offsets)
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
    out, links_removed = _drop_cut_links(out, kept_events, new_offsets)
    out = out.filter(pa.array(has))
    report = CutReport(
        sessions_in=n,
        sessions_out=int(has.sum()),
        sessions_cut=int(((first < lengths) & has).sum()),
        sessions_dropped=int((~has).sum()),
        events_in=total,
        events_out=int(first.sum()),
        links_removed=links_removed,
    )
    return out, report


PAGE_EVENTS = ("page_view", "search", "screen_view")  # events that open a page (the rest happen on one)


def _blank_last_dwell(events: pa.StructArray, offsets: np.ndarray) -> pa.StructArray:
    """`events` with the dwell of each session's last page (its last page view or search and every event
    after it; the last event where there is none) set to null."""
    n = len(events)
    parents = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    opens = pc.fill_null(pc.is_in(events.field("event_type"), pa.array(PAGE_EVENTS)), False)
    idx = np.arange(n)
    last_open = np.full(len(offsets) - 1, -1)
    np.maximum.at(last_open, parents[opens.to_numpy(zero_copy_only=False)], idx[opens.to_numpy(zero_copy_only=False)])
    last_event = offsets[1:] - 1
    start = np.where(last_open >= 0, last_open, last_event)
    blank = idx >= start[parents] if n else np.zeros(0, bool)
    dwell = pc.if_else(pa.array(blank), pa.scalar(None, pa.int64()), events.field("dwell_ms"))
    fields = [dwell if f.name == "dwell_ms" else events.field(f.name) for f in events.type]
    return pa.StructArray.from_arrays(fields, fields=list(events.type))


def _drop_cut_links(table: pa.Table, events: pa.StructArray, offsets: np.ndarray) -> tuple[pa.Table, int]:
    """Null the customer of web sessions that kept no login event; (table, how many links were removed)."""
    login = pc.fill_null(pc.equal(events.field("event_type"), "login"), False).to_numpy(zero_copy_only=False)
    parents = np.repeat(np.arange(table.num_rows), np.diff(offsets))
    kept_login = np.zeros(table.num_rows, bool)
    kept_login[parents[login]] = True
    web = pc.fill_null(pc.equal(table.column("platform"), "web"), False).to_numpy(zero_copy_only=False)
    linked = pc.is_valid(table.column("customer_id")).to_numpy(zero_copy_only=False)
    drop = web & linked & ~kept_login
    column = pc.if_else(pa.array(drop), pa.scalar(None, pa.string()), table.column("customer_id"))
    i = table.schema.get_field_index("customer_id")
    return table.set_column(i, table.schema.field(i), column), int(drop.sum())
