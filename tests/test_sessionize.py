"""Sessionize: invariants that hold for any input, plus the rules one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clickintent import schema
from clickintent.sessionize import SessionizeOptions, sessionize

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def events_table(rows: list[dict[str, object]]) -> pa.Table:
    defaults: dict[str, object] = {c: None for c in schema.EVENTS.names}
    defaults |= {"event_type": "page_view", "platform": "web"}
    full = []
    for r in rows:
        row = defaults | r
        row.setdefault("url", "/x")
        row["url"] = row["url"] or "/x"
        row["page"] = row["page"] or row["url"]
        full.append(row)
    return pa.Table.from_pylist(full, schema=schema.EVENTS)


def run(tmp_path: Path, rows: list[dict[str, object]], options: SessionizeOptions | None = None) -> list[dict]:
    pq.write_table(events_table(rows), tmp_path / "events.parquet")
    sessionize(tmp_path / "events.parquet", tmp_path / "sessions.parquet", options)
    return pq.read_table(tmp_path / "sessions.parquet").to_pylist()


event_rows = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["web", "app"]), st.integers(0, 40 * 3600),
              st.sampled_from(["/p1", "/p2", "/p3"])),
    min_size=1, max_size=120,
)  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=event_rows,
    gap=st.sampled_from([5, 30]),
    max_hours=st.sampled_from([1, 12]),
    max_events=st.sampled_from([3, 512]),
)
def test_invariants(
    tmp_path: Path, rows: list[tuple[str, str, int, str]], gap: int, max_hours: int, max_events: int
) -> None:
    events = [{"visitor_id": v, "platform": p, "ts": T0 + timedelta(seconds=s), "url": u} for v, p, s, u in rows]
    options = SessionizeOptions(gap_minutes=gap, max_duration_hours=max_hours, max_events=max_events)
    sessions = run(tmp_path, events, options)
    # every event in exactly one session: the multiset of (visitor, platform, ts, url) is preserved
    seen = sorted((s["visitor_id"], s["platform"], e["ts"], e["url"]) for s in sessions for e in s["events"])
    assert seen == sorted((e["visitor_id"], e["platform"], e["ts"], e["url"]) for e in events)
    assert sum(s["n_events"] for s in sessions) == len(events)
    assert len({s["session_id"] for s in sessions}) == len(sessions)
    for s in sessions:
        times = [e["ts"] for e in s["events"]]
        assert times == sorted(times)
        assert all(b - a <= timedelta(minutes=gap) for a, b in pairwise(times))
        assert times[-1] - times[0] < timedelta(hours=max_hours)
        assert 1 <= s["n_events"] == len(times) <= max_events
        assert (s["start"], s["end"]) == (times[0], times[-1])


def test_gap_duration_and_count_rules(tmp_path: Path) -> None:
    minutes = [0, 10, 20, 75, 80]  # a 55-minute gap after 20
    sessions = run(tmp_path, [{"visitor_id": "a", "ts": T0 + timedelta(minutes=m)} for m in minutes])
    assert [s["n_events"] for s in sessions] == [3, 2]
    many = [{"visitor_id": "b", "ts": T0 + timedelta(seconds=i)} for i in range(1100)]
    assert [s["n_events"] for s in run(tmp_path, many)] == [512, 512, 76]
    long_visit = [{"visitor_id": "c", "ts": T0 + timedelta(minutes=20 * i)} for i in range(50)]  # 16h20m
    spans = run(tmp_path, long_visit, SessionizeOptions(max_duration_hours=12))
    assert [s["n_events"] for s in spans] == [36, 14]


def test_dwell_is_derived_only_when_missing(tmp_path: Path) -> None:
    rows = [
        {"visitor_id": "a", "ts": T0, "dwell_ms": None},
        {"visitor_id": "a", "ts": T0 + timedelta(seconds=7), "dwell_ms": 999},
        {"visitor_id": "a", "ts": T0 + timedelta(seconds=9)},
    ]
    (session,) = run(tmp_path, rows)
    assert [e["dwell_ms"] for e in session["events"]] == [7000, 999, None]


def test_login_links_the_whole_session(tmp_path: Path) -> None:
    rows = [
        {"visitor_id": "a", "ts": T0},
        {"visitor_id": "a", "ts": T0 + timedelta(minutes=1), "event_type": "login", "customer_id": "C9"},
        {"visitor_id": "a", "ts": T0 + timedelta(minutes=2), "customer_id": "not-from-a-login"},
        {"visitor_id": "a", "ts": T0 + timedelta(hours=3)},  # a later session: not linked
    ]
    sessions = run(tmp_path, rows)
    assert [s["customer_id"] for s in sessions] == ["C9", None]


def test_source_session_ids_are_kept_and_not_cut_by_gaps(tmp_path: Path) -> None:
    rows = [
        {"visitor_id": "a", "ts": T0, "session_id": "S1"},
        {"visitor_id": "a", "ts": T0 + timedelta(hours=2), "session_id": "S1"},
        {"visitor_id": "a", "ts": T0 + timedelta(hours=2, minutes=1), "session_id": "S2"},
    ]
    sessions = run(tmp_path, rows)
    assert sorted((s["session_id"], s["n_events"]) for s in sessions) == [("S1", 2), ("S2", 1)]


def test_ids_are_stable_and_input_order_does_not_matter(tmp_path: Path) -> None:
    rows = [
        {"visitor_id": v, "ts": T0 + timedelta(minutes=7 * i), "url": f"/p{i % 4}"} for i, v in enumerate("abcab" * 20)
    ]
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    first = run(tmp_path / "1", rows)
    second = run(tmp_path / "2", list(reversed(rows)))
    assert first == second  # an unsorted file is sorted by DuckDB first
