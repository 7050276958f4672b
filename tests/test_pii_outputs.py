"""No PII survives in any output (issue 17): the cases of tests/pii_cases.py (every kind, every form, every
field) followed through ingest and the service to everything they write.

Ingest: events.parquet, quarantine.parquet (a share of the rows have a bad timestamp, so their PII lands
in quarantine's redacted excerpts), ingest_report.json, the log; then sessions.parquet and the text-vector
cache the featurizer fills. The service (a real `clickintent serve` on a port): /v1/score, /v1/intent
with explanations, live sessions, /metrics, its log and its text cache. The text cache stores sha256
digests: none may be the digest of a text holding PII (the raw value, or it decoded), while digests of
the redacted texts must be there (so the check is not vacuous). benchmarks/bench_pii.py runs the same
cases at 10,000 per field.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pii_cases import FIELDS, Case, cache_keys, draw_cases, forbidden_digests, survivors

from clickintent.encoder.text import HASHING_NAME
from clickintent.pii import redact

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
BENIGN = {"url": "https://bank.example/cards", "page_title": "Cards", "referrer": None, "search_query": None}


def raw_rows(per_field: int) -> tuple[list[dict[str, Any]], list[Case]]:
    """One input row per case, visitor `v{i}` for case i; every fifth row has a timestamp ingest refuses."""
    all_cases = [c for f in FIELDS for c in draw_cases(f, per_field)]
    rows = []
    for i, case in enumerate(all_cases):
        ts = "not a time" if i % 5 == 4 else (T0 + timedelta(seconds=i)).isoformat()
        rows.append({"visitor_id": f"v{i}", "ts": ts, **BENIGN, case.field: case.value})
    return rows, all_cases


def needles_only(case: Case) -> Case:
    """For texts shared by all cases (logs, metrics), where digit runs of unrelated numbers may join."""
    return replace(case, digits="")


def assert_nothing_survives(all_cases: list[Case], texts_of: dict[str, list[str]], where: str) -> None:
    leaks = [(c.kind, c.form, c.field, s)
             for i, c in enumerate(all_cases) for s in survivors(c, texts_of.get(f"v{i}", []))]  # fmt: skip
    assert leaks == [], f"{len(leaks)} PII strings survive in {where}: {leaks[:5]}"


def assert_no_needle_in(all_cases: list[Case], text: str, where: str) -> None:
    lines = text.splitlines() or [""]
    leaks = [(c.kind, c.form, s) for c in all_cases for s in survivors(needles_only(c), lines)]
    assert leaks == [], f"{len(leaks)} PII strings survive in {where}: {leaks[:5]}"


def test_no_pii_in_anything_ingest_writes(tmp_path: Path, bundles: dict[str, Path], caplog: Any) -> None:
    from clickintent.bundle import load_bundle
    from clickintent.encoder.features import Featurizer
    from clickintent.encoder.io import load_encoder
    from clickintent.encoder.text import HashingEncoder, TextVectors
    from clickintent.ingest import ingest
    from clickintent.sessionize import sessionize

    rows, all_cases = raw_rows(per_field=250)
    src = tmp_path / "raw.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level(logging.DEBUG):
        report = ingest(src, tmp_path / "out")
    assert report.rows_in == len(rows) and report.quarantined >= len(rows) // 5
    out = tmp_path / "out"
    texts_of: dict[str, list[str]] = {}
    for r in pq.read_table(out / "events.parquet").to_pylist():
        texts_of.setdefault(r["visitor_id"], []).extend(str(v) for v in r.values() if isinstance(v, str))
    for r in pq.read_table(out / "quarantine.parquet").to_pylist():
        raw = json.loads(r["raw"])
        texts_of.setdefault(str(raw.get("visitor_id")), []).append(r["raw"])
    assert len(texts_of) == len(rows)  # every row is somewhere
    assert_nothing_survives(all_cases, texts_of, "events.parquet / quarantine.parquet")
    assert_no_needle_in(all_cases, (out / "ingest_report.json").read_text() + caplog.text, "the report and log")

    sessionize(out / "events.parquet", out / "sessions.parquet")
    sessions = pq.read_table(out / "sessions.parquet")
    per_visitor: dict[str, list[str]] = {}
    for s in sessions.to_pylist():
        for e in s["events"]:
            per_visitor.setdefault(s["visitor_id"], []).extend(str(v) for v in e.values() if isinstance(v, str))
    assert_nothing_survives(all_cases, per_visitor, "sessions.parquet")

    _, vocab, _ = load_encoder(load_bundle(bundles["a"]))
    text = TextVectors(HashingEncoder(), tmp_path / "text")
    Featurizer(vocab, text).frame(sessions)
    text.close()
    keys = cache_keys(tmp_path / "text")
    kept = [c for i, c in enumerate(all_cases) if i % 5 != 4 and c.field in ("page_title", "search_query")]
    assert {k for c in all_cases for k in forbidden_digests(c, HASHING_NAME)} & keys == set()
    redacted = {hashlib.sha256(f"{HASHING_NAME}\x00{redact(c.value).strip()}".encode()).digest() for c in kept}
    assert len(redacted & keys) >= 0.9 * len(redacted), (len(redacted & keys), len(redacted))  # not vacuous


# --- the service --------------------------------------------------------------------------------

API_KEY = "pii-test-key"


@pytest.fixture(scope="module")
def pii_server(bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("fastapi")
    from serve_support import Server

    root = tmp_path_factory.mktemp("pii-server")
    (root / "text").mkdir()
    s = Server(bundles["a"], root / "server.log", "--text-cache", str(root / "text"), "--log-level", "debug",
               api_key=API_KEY)  # fmt: skip
    s.text_cache = root / "text"
    yield s
    s.stop()


def _event(case: Case, sec: int) -> dict[str, Any]:
    benign = {k: v for k, v in BENIGN.items() if v}
    return {"ts": (T0 + timedelta(seconds=sec)).isoformat(), **benign, case.field: case.value}


@pytest.mark.integration
def test_no_pii_in_anything_the_service_answers_logs_or_caches(pii_server: Any) -> None:
    httpx = pytest.importorskip("httpx")
    all_cases = [c for f in FIELDS for c in draw_cases(f, 60)]
    answers: dict[str, list[str]] = {}
    with httpx.Client(base_url=pii_server.url, headers={"X-API-Key": API_KEY}, timeout=60) as c:
        for start in range(0, len(all_cases), 60):
            batch = [{"session_id": f"v{i}", "events": [_event(all_cases[i], 0), _event(all_cases[i], 30)]}
                     for i in range(start, min(start + 60, len(all_cases)))]  # fmt: skip
            r = c.post("/v1/score", json={"sessions": batch})
            assert r.status_code == 200, r.text
            for item in r.json()["results"]:
                answers.setdefault(item["session_id"], []).append(json.dumps(item))
        for i, case in enumerate(all_cases):
            events = [_event(case, 0), {"ts": (T0 + timedelta(seconds=20)).isoformat(), "url": "https://bank.example/"}]
            for path, body in (("/v1/intent", {"events": events, "explain": True}),
                               ("/v1/sessions", {"events": events, "explain": True})):  # fmt: skip
                r = c.post(path, json=body)
                assert r.status_code in (200, 201, 422), r.text
                answers.setdefault(f"v{i}", []).append(r.text)
            if r.status_code == 201:
                more = c.post(f"/v1/sessions/{r.json()['session_id']}/events", json={"events": [_event(case, 40)],
                              "explain": True})  # fmt: skip
                answers[f"v{i}"].append(more.text)
        metrics = c.get("/metrics").text
    assert_nothing_survives(all_cases, answers, "the service's answers")
    assert_no_needle_in(all_cases, metrics, "/metrics")
    assert_no_needle_in(all_cases, pii_server.log.read_text(), "the service's log")
    keys = cache_keys(pii_server.text_cache)
    assert keys and {k for c in all_cases for k in forbidden_digests(c, HASHING_NAME)} & keys == set()
