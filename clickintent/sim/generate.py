"""`simulate()`: generate a world batch by batch and write `DIR/events.parquet` and `DIR/truth/`.

People are generated in fixed-size batches, each from its own seed (`SeedSequence([seed, batch])`) split
into independent streams for people, web and app, so memory stays flat, the output does not depend on
anything but (seed, sizes, config, version), and with `signal=0` the app side does not even depend on
the web side's random draws. Deliberate bad rows (a few per reason, see `BAD_REASONS`) are extra rows on
visitor ids no one else has; they belong to no truth session. Writing is plain pyarrow Parquet (zstd),
byte-identical for the same inputs and library versions.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from clickintent import __version__
from clickintent.schema import EVENTS, SOURCE_COLUMNS, TS
from clickintent.sim import strings as s
from clickintent.sim.app import generate_app, past_behaviour
from clickintent.sim.config import SimConfig, load_config
from clickintent.sim.people import make_people
from clickintent.sim.products import PRODUCT_IDS
from clickintent.sim.truth import APP_HOME, CONVERSIONS, SESSIONS, customers_table
from clickintent.sim.web import US, generate_web
from clickintent.sim.world import build_world

BATCH_PEOPLE = 5000  # part of the output's identity: changing it changes every byte
# Raw events: the contract's source columns, every one nullable (raw data may be bad).
RAW_EVENTS = pa.schema([pa.field(f.name, f.type, nullable=True) for f in EVENTS if f.name in SOURCE_COLUMNS])
# Named as ingest names its quarantine reasons, so the two reconcile by key.
BAD_REASONS = ("missing visitor_id", "missing ts", "missing url", "invalid platform")
COMPRESSION = "zstd"


@dataclass(frozen=True)
class SimSummary:
    """What a run wrote, counted (also stored in truth/manifest.json)."""

    out_dir: Path
    events: int
    web_events: int
    app_events: int
    visitors: int
    cookies: int
    web_sessions: int
    bot_sessions: int
    mixed_sessions: int
    logged_in_sessions: int
    customers: int
    app_sessions: int
    tile_clicks: int
    conversions: dict[str, int]
    bad_rows: dict[str, int]
    pii_bait: int

    def counts(self) -> dict[str, object]:
        """Every count, without the output directory (what the manifest stores)."""
        return {k: v for k, v in self.__dict__.items() if k != "out_dir"}

    def lines(self) -> list[str]:
        """The one-screen summary the CLI prints."""
        conv = ", ".join(f"{k} {v:,}" for k, v in sorted(self.conversions.items())) or "none"
        bad = ", ".join(f"{k} {v}" for k, v in self.bad_rows.items())
        return [
            f"events        {self.events:>12,}  (web {self.web_events:,}, app {self.app_events:,})",
            f"visitors      {self.visitors:>12,}  with {self.cookies:,} cookies",
            f"web sessions  {self.web_sessions:>12,}  (+{self.bot_sessions:,} bot, {self.mixed_sessions:,} mixed,"
            f" {self.logged_in_sessions:,} with a login)",
            f"customers     {self.customers:>12,}",
            f"app views     {self.app_sessions:>12,}  ({self.tile_clicks:,} tile clicks)",
            f"conversions   {sum(self.conversions.values()):>12,}  ({conv})",
            f"bad rows      {sum(self.bad_rows.values()):>12,}  ({bad}); PII bait values {self.pii_bait:,}",
            f"written to    {self.out_dir}",
        ]


def _ids(first_id: int, n: int, max_cookies: int, t0_s: int, rng: np.random.Generator) -> dict[str, pa.Array]:
    """Customer ids, app install ids, account references and cookie ids of a batch of people."""
    pid = np.arange(first_id, first_id + n)
    keys = (pid[:, None] * max_cookies + np.arange(max_cookies)[None, :]).ravel()
    first_seen = t0_s - rng.integers(0, 400 * 86_400, len(keys))
    return {
        "customer": s.cat("C", s.digits(s.scramble(pid, 10**9, 1_000_003, 12_345), 9)),
        "app": s.cat("app.", s.digits(s.scramble(pid, 10**12, 1_000_000_007, 99), 12)),
        "acct": s.digits((pid * 7_919) % 90_000 + 10_000, 5),
        "cookie": s.cat(s.digits(s.scramble(keys, 10**10, 2_654_435_761, 7), 10), ".", s.digits(first_seen, 10)),
    }


def bad_rows(rng: np.random.Generator, per_reason: int, t0_us: int, days: int) -> pa.Table:
    """A few rows per reason that ingest must quarantine; each on its own visitor id."""
    n = per_reason * len(BAD_REASONS)
    reason = np.repeat(np.arange(len(BAD_REASONS)), per_reason)
    vid = s.cat("0000000000.", s.digits(np.arange(n), 10))
    ts = t0_us + rng.integers(0, days * 86_400 * US, n)
    return pa.table(
        {
            "visitor_id": s.if_else(reason == 0, s.NULL_STR, vid),
            "ts": pa.array(ts, mask=reason == 1).cast(TS),
            "url": s.if_else(reason == 2, "", "https://www.examplebank.com/"),
            "page_title": pa.repeat("Banking, credit cards, loans and investing | ExampleBank", n),
            "event_type": pa.repeat("page_view", n),
            "device": pa.repeat("desktop", n),
            "referrer": pa.nulls(n, pa.string()),
            "search_query": pa.nulls(n, pa.string()),
            "dwell_ms": pa.array(rng.integers(2_000, 60_000, n)),
            "platform": s.if_else(reason == 3, "kiosk", "web"),
            "customer_id": pa.nulls(n, pa.string()),
            "session_id": pa.nulls(n, pa.string()),
        },
        schema=RAW_EVENTS,
    )


def _sorted_by_time(table: pa.Table) -> pa.Table:
    ts = pc.fill_null(table["ts"].cast(pa.int64()), 0).to_numpy()
    return table.take(pa.array(np.argsort(ts, kind="stable")))


def simulate(
    out_dir: str | Path,
    *,
    visitors: int = 2_000,
    days: int = 30,
    seed: int = 0,
    signal: float = 0.5,
    config: SimConfig | str | Path | None = None,
    progress: bool = False,
) -> SimSummary:
    """Generate a world and write `out_dir/events.parquet` (raw events) and `out_dir/truth/`.

    visitors: people who visit the web site at least once (customers among them use the app).
    days: length of the window, starting at `config.start`.
    signal: 0..1, how much a customer's recent web intent pulls their app tile clicks (0 = placebo).
    config: a SimConfig, a JSON file, the name of a shipped config (e.g. "shifted"), or None.
    """
    if visitors < 1 or days < 1:
        raise ValueError("visitors and days must be >= 1")
    if not 0.0 <= signal <= 1.0:
        raise ValueError("signal must be between 0 and 1")
    cfg = config if isinstance(config, SimConfig) else load_config(config)
    if visitors * cfg.max_cookies >= 10**9:
        raise ValueError("too many visitors for the id space (visitors * max_cookies must stay under 1e9)")
    world = build_world(cfg)
    out = Path(out_dir)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    t0_us = int(datetime.fromisoformat(cfg.start).replace(tzinfo=UTC).timestamp()) * US

    sessions, app_home, conversions, customers = [], [], [], []
    bait: dict[str, list[str]] = {"search_query": [], "url": []}
    counts: Counter[str] = Counter()
    next_session = next_view = 0
    n_batches = -(-visitors // BATCH_PEOPLE)
    with (
        pq.ParquetWriter(out / "events.parquet", RAW_EVENTS, compression=COMPRESSION) as writer,
        tqdm(total=visitors, unit="visitor", desc="simulate", disable=not progress) as bar,
    ):
        for b in range(n_batches):
            first_id = b * BATCH_PEOPLE
            n = min(BATCH_PEOPLE, visitors - first_id)
            # the fifth stream (applications) came later: the first four draw as they always did
            r_people, r_web, r_app, r_bad, r_apply = (
                np.random.default_rng(c) for c in np.random.SeedSequence([seed, b]).spawn(5)
            )
            people = make_people(r_people, world, n, first_id)
            ids = _ids(first_id, n, cfg.max_cookies, t0_us // US, r_people)
            web = generate_web(r_web, r_apply, world, people, days, t0_us, next_session, b, ids, signal)
            next_session += web.sessions.num_rows
            past_opens, past_clicks = past_behaviour(r_app, people)
            app = generate_app(
                r_app, world, people, days, t0_us, next_session, next_view, ids, past_clicks, web.recent, signal
            )
            next_session += app.sessions.num_rows
            next_view += app.app_home.num_rows
            parts = [web.events, app.events]
            if b == 0 and cfg.bad_rows_per_reason:
                parts.append(bad_rows(r_bad, cfg.bad_rows_per_reason, t0_us, days))
            writer.write_table(_sorted_by_time(pa.concat_tables(parts)))
            counts.update(web_events=web.events.num_rows, app_events=app.events.num_rows)
            sessions += [web.sessions, app.sessions]
            app_home.append(app.app_home)
            conversions += [web.conversions, app.conversions]
            customers.append(customers_table(people, ids["customer"], ids["app"], past_opens, past_clicks))
            for k in bait:
                bait[k] += web.bait[k]
            bar.update(n)

    truth = {
        "sessions": pa.concat_tables(sessions).cast(SESSIONS),
        "app_home": pa.concat_tables(app_home).cast(APP_HOME),
        "conversions": _sorted_by_time(pa.concat_tables(conversions).cast(CONVERSIONS)),
        "customers": pa.concat_tables(customers),
    }
    for name, table in truth.items():
        pq.write_table(table, out / "truth" / f"{name}.parquet", compression=COMPRESSION)
    bad = {r: cfg.bad_rows_per_reason for r in BAD_REASONS}
    summary = _summarise(out, truth, counts, bad, sum(len(v) for v in bait.values()), visitors)
    _write_json(
        out / "truth" / "bad_rows.json",
        {
            "total": sum(bad.values()),
            "by_reason": bad,
            "note": "extra rows on visitor ids starting '0000000000.' (or null); they belong to no truth session",
        },
    )
    _write_json(out / "truth" / "pii_bait.json", bait)
    _write_json(
        out / "truth" / "manifest.json",
        {
            "clickintent_version": __version__,
            "seed": seed,
            "visitors": visitors,
            "days": days,
            "signal": signal,
            "batch_people": BATCH_PEOPLE,
            "config": cfg.to_dict(),
            "products": list(PRODUCT_IDS),
            "intents": [i.name for i in world.intents],
            "counts": summary.counts(),
        },
    )
    return summary


def _summarise(
    out: Path,
    truth: dict[str, pa.Table],
    counts: Counter[str],
    bad: dict[str, int],
    n_bait: int,
    visitors: int,
) -> SimSummary:
    sess = truth["sessions"]
    web = pc.equal(sess["platform"], "web")
    human = pc.and_(web, pc.invert(sess["is_bot"]))
    conv = truth["conversions"]["channel"].to_pylist()
    return SimSummary(
        out_dir=out,
        events=counts["web_events"] + counts["app_events"] + sum(bad.values()),
        web_events=counts["web_events"],
        app_events=counts["app_events"],
        visitors=visitors,
        cookies=pc.count_distinct(sess.filter(human)["visitor_id"]).as_py(),
        web_sessions=pc.sum(human).as_py() or 0,
        bot_sessions=pc.sum(sess["is_bot"]).as_py() or 0,
        mixed_sessions=pc.sum(sess["is_mixed"]).as_py() or 0,
        logged_in_sessions=pc.sum(pc.and_(human, sess["logged_in"])).as_py() or 0,
        customers=truth["customers"].num_rows,
        app_sessions=truth["app_home"].num_rows,
        tile_clicks=truth["app_home"].num_rows - truth["app_home"]["tile_clicked"].null_count,
        conversions=dict(sorted(Counter(conv).items())),
        bad_rows=bad,
        pii_bait=n_bait,
    )


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
