"""The simulator's output through the real pipeline: `ingest` quarantines exactly the deliberate bad rows
(counted by reason) and redacts the PII bait, and `sessionize` with defaults recovers every truth session."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from clickintent.ingest import IngestReport, ingest
from clickintent.sessionize import sessionize
from clickintent.sim import simulate
from clickintent.sim.join import true_intents
from clickintent.taxonomy.crawls import machine_paced

KEY = ["visitor_id", "platform", "start", "end"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, IngestReport]:
    d = tmp_path_factory.mktemp("sim-ingest")
    simulate(d, visitors=600, days=30, seed=21, signal=0.5)
    report = ingest(d / "events.parquet", d / "ingested")
    return d, report


def test_ingest_quarantines_only_the_deliberate_bad_rows(run: tuple[Path, IngestReport]) -> None:
    d, report = run
    bad = json.loads((d / "truth" / "bad_rows.json").read_text())
    assert report.reconciles and report.duplicates == 0
    assert report.quarantine_reasons == bad["by_reason"]
    assert report.quarantined == bad["total"] > 0
    truth = pd.read_parquet(d / "truth" / "sessions.parquet", columns=["n_events"])
    assert report.rows_out == truth.n_events.sum()


def test_sessionize_recovers_every_truth_session(run: tuple[Path, IngestReport]) -> None:
    d, _ = run
    sessionize(d / "ingested" / "events.parquet", d / "ingested" / "sessions.parquet")
    got = pd.read_parquet(d / "ingested" / "sessions.parquet", columns=[*KEY, "n_events", "customer_id"])
    truth = pd.read_parquet(d / "truth" / "sessions.parquet")
    m = got.merge(truth, on=KEY, how="outer", indicator=True, suffixes=("", "_truth"))
    assert (m._merge == "both").all(), m._merge.value_counts()
    assert (m.n_events == m.n_events_truth).all()
    # a login is the only link between channels, and it links to the right customer
    assert m.customer_id.notna().eq(m.logged_in).all()
    linked = m[m.customer_id.notna()]
    assert (linked.customer_id == linked.customer_id_truth).all()


def test_true_intents_are_the_human_web_sessions_of_the_truth(run: tuple[Path, IngestReport]) -> None:
    # The one truth join (sim/join.py) that the report, the CLI and bench_taxonomy use: on the sessionized
    # output it names exactly the web sessions that are not bots, each with its truth intent.
    d, _ = run
    sessions = d / "ingested" / "sessions.parquet"
    if not sessions.exists():
        sessionize(d / "ingested" / "events.parquet", sessions)
    got = true_intents(pq.read_table(sessions), d)
    s = pd.read_parquet(sessions, columns=["session_id", *KEY])
    m = s.merge(pd.read_parquet(d / "truth" / "sessions.parquet"), on=KEY)
    human_web = m[(m.platform == "web") & ~m.is_bot]
    assert got == dict(zip(human_web.session_id, human_web.intent, strict=True))
    assert len(got) > 100 and None not in got.values()


def test_machine_paced_visits_are_the_simulators_bots(run: tuple[Path, IngestReport]) -> None:
    # What `taxonomy build` leaves out (clickintent/taxonomy/crawls.py), against the truth: no person, and
    # nearly every bot (one whose random pages repeat may arrive on fewer than 10).
    d, _ = run
    sessions = d / "ingested" / "sessions.parquet"
    if not sessions.exists():
        sessionize(d / "ingested" / "events.parquet", sessions)
    table = pq.read_table(sessions)
    s = table.select(KEY).to_pandas()
    s["paced"] = [machine_paced(evs) for evs in table.column("events").to_pylist()]
    m = s.merge(pd.read_parquet(d / "truth" / "sessions.parquet", columns=[*KEY, "is_bot"]), on=KEY)
    assert m.is_bot.sum() > 20
    assert not (m.paced & ~m.is_bot).any()
    assert (m.paced & m.is_bot).sum() >= 0.95 * m.is_bot.sum()


def _alnum(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def _surviving_bait(d: Path, keep: str) -> list[str]:
    """Bait values (of the kind selected by `keep`) still readable anywhere in the ingested text,
    however the URL spelled the separators between their parts."""
    bait = json.loads((d / "truth" / "pii_bait.json").read_text())
    values = [v for v in bait["search_query"] + bait["url"] if re.fullmatch(keep, v)]
    assert values, f"no bait of kind {keep!r}"
    e = pd.read_parquet(d / "ingested" / "events.parquet")
    text = "\n".join(_alnum(v) for c in ("url", "page", "page_title", "referrer", "search_query")
                     for v in e[c].dropna().unique())  # fmt: skip
    return [v for v in values if _alnum(v) in text]


def test_ingest_redacts_e_mail_phone_and_token_bait(run: tuple[Path, IngestReport]) -> None:
    d, report = run
    assert report.redactions
    assert _surviving_bait(d, r"(?!\d{4} \d).*") == []  # everything but card numbers


def test_ingest_redacts_card_number_bait_in_urls(run: tuple[Path, IngestReport]) -> None:
    d, _ = run
    assert _surviving_bait(d, r"\d{4} \d.*") == []
