"""The simulator: catalogue and intents, determinism, truth that reconciles with the events, invariants,
the placebo property of `--signal 0`, configs and the CLI. Worlds are small (a few hundred visitors)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from clickintent import schema
from clickintent.cli import main
from clickintent.cut import cut_sessions
from clickintent.ingest import ingest
from clickintent.sessionize import sessionize
from clickintent.sim import (
    INTENT_NAMES,
    PRODUCT_IDS,
    SimConfig,
    intent_holding_keys,
    load_config,
    simulate,
)
from clickintent.sim import generate as sim_generate
from clickintent.sim.catalogue import GROUPS, SECTIONS, default_pages
from clickintent.sim.config import config_from_dict
from clickintent.sim.intents import INTENTS
from clickintent.sim.world import build_world

GAP = pd.Timedelta(minutes=30)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(out, visitors=400, days=21, seed=7, signal=0.5)
    return out


def read(d: Path, name: str) -> pd.DataFrame:
    path = d / "events.parquet" if name == "events" else d / "truth" / f"{name}.parquet"
    return pd.read_parquet(path)


def good_events(d: Path) -> pd.DataFrame:
    e = read(d, "events")
    return e[e.visitor_id.notna() & e.ts.notna() & (e.url != "") & e.platform.isin(schema.PLATFORMS)]


def test_catalogue_intents_and_products() -> None:
    pages = default_pages()
    world = build_world()
    assert len(pages) >= 200 and len(SECTIONS) >= 10
    assert len({world.pages[i].group for i in range(len(pages))}) == len(GROUPS)
    assert all(p.path.startswith("/") and p.title.endswith("| ExampleBank") for p in pages)
    assert len(INTENTS) >= 15 and len(set(INTENT_NAMES)) == len(INTENTS)
    assert np.allclose(world.trans_cum[:, :, -1], 1.0)  # every journey state has a way on (or out)
    sold = {p.product for p in pages if p.product}
    wanted = {p for i in INTENTS for p in i.products}
    assert set(PRODUCT_IDS) == sold and wanted <= set(PRODUCT_IDS)


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d, seed in ((a, 3), (b, 3), (c, 4)):
        simulate(d, visitors=150, days=10, seed=seed)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 8
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert (a / "events.parquet").read_bytes() != (c / "events.parquet").read_bytes()


# The default world of seed 7 as the simulator wrote it before its catalogue and intents became data files
# (issue 22): a digest of every table's rows and every JSON file. A deliberate change to the simulator
# changes these; update them then, and say so in the commit.
WORLD_DIGEST = {
    "events.parquet": "4a16dca6b8584e81",
    "truth/app_home.parquet": "92c30a805b4b8dad",
    "truth/bad_rows.json": "6b636dc7d2785ff9",
    "truth/conversions.parquet": "d4d7feaccb40a837",
    "truth/customers.parquet": "cede30cdb582a5e1",
    "truth/manifest.json": "261b4b0bf07bd183",
    "truth/pii_bait.json": "7da809bdef868d52",
    "truth/sessions.parquet": "51b388a7dc51ed9b",
}
CATALOGUE_DIGEST = "29e27dfb4adc9f73"


def _digest(blob: str) -> str:
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def test_the_default_world_is_unchanged(tmp_path: Path) -> None:
    # Rows, not file bytes: a pyarrow upgrade may write the same rows differently.
    simulate(tmp_path, visitors=150, days=10, seed=7, signal=0.5)
    got = {}
    for f in sorted(p for p in tmp_path.rglob("*") if p.is_file()):
        rows = None if f.suffix == ".json" else pq.read_table(f).to_pylist()
        blob = f.read_text() if rows is None else json.dumps(rows, default=str, sort_keys=True)
        got[f.relative_to(tmp_path).as_posix()] = _digest(blob)
    assert got == WORLD_DIGEST
    assert _digest(json.dumps([dataclasses.asdict(p) for p in default_pages()])) == CATALOGUE_DIGEST


def test_raw_events_follow_the_source_contract(world: Path) -> None:
    table = pq.read_table(world / "events.parquet")
    assert tuple(table.schema.names) == schema.SOURCE_COLUMNS
    assert table.schema.field("ts").type == schema.TS
    e = good_events(world)
    assert e.session_id.isna().all()
    assert set(e.event_type) <= set(schema.KNOWN_EVENT_TYPES)
    web, app = e[e.platform == "web"], e[e.platform == "app"]
    assert web.url.str.startswith("https://www.examplebank.com/").all() and app.url.str.startswith("app://").all()
    # the mess real logs have
    assert web.url.str.contains(r"utm_source=|gclid=", regex=True).any()
    assert web.url.str.contains(r"appId=\d+", regex=True).any() and web.url.str.contains(r"/accounts/\d+/").any()
    assert web.referrer.str.contains(r"google\.com/search\?q=", regex=True, na=False).any()
    assert web.referrer.isna().any() and web.dwell_ms.isna().any() and web.dwell_ms.notna().any()
    assert (web.event_type == "search").any() and web.search_query.notna().any()
    assert set(web.device.dropna()) <= {"desktop", "mobile", "tablet"}
    # customer_id: only on login events on the web, on every app event
    assert web.customer_id.notna().eq(web.event_type == "login").all()
    assert app.customer_id.notna().all()


def test_every_truth_session_is_exactly_its_events(world: Path) -> None:
    e, t = good_events(world), read(world, "sessions")
    assert t.sim_session_id.is_unique
    assert len(read(world, "events")) == len(e) + json.loads((world / "truth/bad_rows.json").read_text())["total"]
    assert t.n_events.sum() == len(e)
    key = ["visitor_id", "platform"]
    m = e.merge(t[[*key, "start", "end", "sim_session_id"]], on=key)
    m = m[(m.ts >= m.start) & (m.ts <= m.end)]
    assert len(m) == len(e)  # every event in exactly one truth session
    got = m.groupby("sim_session_id").ts.agg(["min", "max", "size"])
    t = t.set_index("sim_session_id").loc[got.index]
    assert (got["min"] == t.start).all() and (got["max"] == t.end).all() and (got["size"] == t.n_events).all()


def test_the_default_session_rules_recover_the_truth(world: Path) -> None:
    e = good_events(world).sort_values(["visitor_id", "platform", "ts"], kind="stable")
    new = (e.visitor_id != e.visitor_id.shift()) | (e.platform != e.platform.shift()) | (e.ts.diff() > GAP)
    got = e.assign(s=new.cumsum()).groupby("s").agg(
        visitor_id=("visitor_id", "first"), platform=("platform", "first"), start=("ts", "min"),
        end=("ts", "max"), n=("ts", "size"))  # fmt: skip
    t = read(world, "sessions")
    assert ((t.end - t.start) < pd.Timedelta(hours=12)).all() and (t.n_events < 512).all()
    m = got.merge(t, on=["visitor_id", "platform", "start", "end"], how="outer", indicator=True)
    assert (m._merge == "both").all() and (m.n == m.n_events).all()


def test_invariants(world: Path) -> None:
    raw = read(world, "events")
    e = raw[raw.visitor_id.notna() & raw.ts.notna()]
    assert e.groupby("visitor_id").ts.apply(lambda ts: ts.is_monotonic_increasing).all()
    customers, t = read(world, "customers"), read(world, "sessions")
    logins = e[e.event_type == "login"]
    assert len(logins) and logins.customer_id.isin(customers.customer_id).all()
    # the login names the person behind the cookie, and only customers' sessions have one
    own = logins.merge(t, on=["visitor_id", "platform"], suffixes=("", "_truth"))
    own = own[(own.ts >= own.start) & (own.ts <= own.end)]
    assert len(own) == len(logins) and (own.customer_id == own.customer_id_truth).all()
    assert t[t.logged_in & (t.platform == "web")].customer_id.notna().all()
    assert t.groupby("person_id").visitor_id.nunique().max() > 1  # several cookies per person
    assert t.is_bot.any() and t.is_mixed.any() and (t[t.is_mixed].intents.map(len) == 2).all()

    home = read(world, "app_home")
    assert home.tiles_shown.map(len).between(8, 12).all()
    assert home.tiles_shown.map(lambda x: len(set(x)) == len(x)).all()
    clicked = home[home.tile_clicked.notna()]
    assert len(clicked) and all(c in s for c, s in zip(clicked.tile_clicked, clicked.tiles_shown, strict=True))
    clicks = e[e.event_type == "tile_click"]
    assert sorted(clicks.ts) == sorted(clicked.click_ts)
    assert home.customer_id.isin(customers.customer_id).all()
    assert set(customers.holdings.explode().dropna()) <= set(PRODUCT_IDS)


def test_conversions_point_at_their_sessions(world: Path) -> None:
    c, t, home = read(world, "conversions"), read(world, "sessions"), read(world, "app_home")
    assert set(c.channel) == {"web", "offline", "app"} and set(c["product"]) <= set(PRODUCT_IDS)
    web = c[c.channel == "web"].merge(t, left_on="web_session_id", right_on="sim_session_id", suffixes=("", "_s"))
    assert len(web) == (c.channel == "web").sum()
    assert ((web.ts >= web.start) & (web.ts <= web.end)).all() and (web.visitor_id == web.visitor_id_s).all()
    # after a visit: offline, or in the app (carrying the customer), within three days of the visit's end
    later = c[c.web_session_id.notna() & (c.channel != "web")]
    later = later.merge(t, left_on="web_session_id", right_on="sim_session_id", suffixes=("", "_s"))
    assert len(later) == (c.web_session_id.notna() & (c.channel != "web")).sum() and len(later)
    assert ((later.ts > later.end) & (later.ts <= later.end + pd.Timedelta(days=3))).all()
    assert later[later.channel == "app"].customer_id.notna().all()
    assert (later[later.channel == "offline"].visitor_id == later[later.channel == "offline"].visitor_id_s).all()
    # after a tile click
    tile = c[c.app_view_id.notna()]
    app = tile.merge(home, left_on="app_view_id", right_on="view_id")
    assert len(app) == len(tile) and (app["product"] == app.tile_clicked).all() and (tile.channel == "app").all()
    assert (c.web_session_id.notna() != c.app_view_id.notna()).all()


def test_the_world_writes_the_probabilities_it_draws_from(world: Path) -> None:
    home, t = read(world, "app_home"), read(world, "sessions")
    for col in ("p_tiles", "p_tiles_profile"):
        assert (home[col].map(len) == home.tiles_shown.map(len)).all()
        assert np.allclose(home[col].map(sum), 1.0, atol=1e-4)
    human = t[(t.platform == "web") & ~t.is_bot]
    assert human.p_apply.notna().all() and t[t.is_bot | (t.platform == "app")].p_apply.isna().all()
    assert np.allclose(human.p_apply.map(sum), 1.0, atol=1e-4)
    # the visit's pull raises the probability of the product its intent is about, never that of none
    full, prof = np.stack(human.p_apply.to_numpy()), np.stack(human.p_apply_profile.to_numpy())
    assert (full[:, 0] <= prof[:, 0] + 1e-6).all() and (full[:, 0] < prof[:, 0] - 1e-6).any()
    clicked = home[home.tile_clicked.notna()]
    shown = zip(clicked.p_tiles, clicked.tiles_shown, clicked.tile_clicked, strict=True)
    got = [p[list(s).index(k)] for p, s, k in shown]
    assert float(np.mean(got)) > 1 / 8  # the clicked tile is likelier than a uniform pick among those shown


def test_signal_zero_probabilities_ignore_the_visit(tmp_path: Path) -> None:
    simulate(tmp_path, visitors=300, days=14, seed=5, signal=0.0)
    home, t = read(tmp_path, "app_home"), read(tmp_path, "sessions")
    assert all(np.array_equal(a, b) for a, b in zip(home.p_tiles, home.p_tiles_profile, strict=True))
    web = t[t.p_apply.notna()]
    assert all(np.array_equal(a, b) for a, b in zip(web.p_apply, web.p_apply_profile, strict=True))


def test_visits_before_any_application_are_the_same_at_every_signal(tmp_path: Path) -> None:
    """The signal changes what happens after a visit (applications, app clicks), never the visit itself."""

    def visits(signal: float) -> pa.Table:
        d = tmp_path / str(signal)
        simulate(d, visitors=500, days=14, seed=3, signal=signal)
        ingest(d / "events.parquet", d / "data")
        sessionize(d / "data" / "events.parquet", d / "data" / "sessions.parquet")
        cut, _ = cut_sessions(pq.read_table(d / "data" / "sessions.parquet"))
        return cut.filter(pc.equal(cut.column("platform"), "web"))

    base = visits(0.0)
    for signal in (0.5, 1.0):
        assert visits(signal).equals(base)


def test_events_never_name_the_intent(world: Path) -> None:
    e = read(world, "events")
    text = "\n".join(
        e[c].dropna().astype(str).str.cat(sep="\n") for c in ("url", "page_title", "referrer", "search_query")
    )
    for name in INTENT_NAMES:
        if "_" in name:  # one-word names ("careers") are also ordinary page words
            assert name not in text


def _placebo_p_value(d: Path, n_perm: int = 400) -> float:
    """Permutation test: do customers click a tile of their recent web intent's products more often than
    customers of the same segment and intent-relevant holdings with another recent intent would?
    One view per customer (their first with a recent web session), so units are independent."""
    products = {i.name: set(i.products) for i in INTENTS}
    keys = intent_holding_keys()
    home, customers = read(d, "app_home"), read(d, "customers")
    v = home[home.recent_intent.notna()].sort_values("ts").drop_duplicates("customer_id")
    v = v.merge(customers[["customer_id", "segment", "holdings"]], on="customer_id")
    stratum = v.segment + "|" + v.holdings.map(lambda h: ",".join(k for k in keys if k in h))
    clicked, intent = v.tile_clicked.fillna("").to_numpy(), v.recent_intent.to_numpy()

    def stat(intents: np.ndarray) -> int:
        return sum(c in products[i] for c, i in zip(clicked, intents, strict=True))

    return _stratified_permutation_p(stat, intent, stratum.to_numpy(), n_perm)


def _stratified_permutation_p(
    stat: Callable[[np.ndarray], int], intent: np.ndarray, stratum: np.ndarray, n_perm: int
) -> float:
    """One-sided p-value of `stat(intent)` against `intent` shuffled within each stratum."""
    observed, rng, as_large = stat(intent), np.random.default_rng(0), 0
    groups = [np.flatnonzero(stratum == s) for s in np.unique(stratum)]
    for _ in range(n_perm):
        shuffled = intent.copy()
        for g in groups:
            shuffled[g] = intent[rng.permutation(g)]
        as_large += stat(shuffled) >= observed
    return (1 + as_large) / (1 + n_perm)


def test_signal_zero_is_a_placebo_and_signal_one_is_not(tmp_path: Path) -> None:
    p = {}
    for signal in (0.0, 1.0):
        simulate(tmp_path / str(signal), visitors=3_000, days=30, seed=11, signal=signal)
        p[signal] = _placebo_p_value(tmp_path / str(signal))
    assert p[0.0] > 0.05, "app clicks depend on web intent in the placebo world"
    assert p[1.0] < 0.01, "the test has no power: signal 1 should show the web intent in app clicks"


def _application_placebo_p_value(d: Path, n_perm: int = 400) -> float:
    """Permutation test on applications: is the product applied for after a visit one of the visit's
    intent's products more often than with the intents shuffled within segment and customer status?"""
    products = {i.name: set(i.products) for i in INTENTS}
    c, t = read(d, "conversions"), read(d, "sessions")
    c = c[c.web_session_id.notna()].drop_duplicates("person_id")
    v = c.merge(t[["sim_session_id", "intent", "customer_id"]], left_on="web_session_id", right_on="sim_session_id",
                suffixes=("", "_s"))  # fmt: skip
    stratum = v.customer_id_s.notna().astype(str).to_numpy()
    applied, intent = v["product"].to_numpy(), v.intent.to_numpy()

    def stat(intents: np.ndarray) -> int:
        return sum(p in products[i] for p, i in zip(applied, intents, strict=True))

    return _stratified_permutation_p(stat, intent, stratum, n_perm)


def test_applications_follow_the_visit_only_with_signal(tmp_path: Path) -> None:
    p = {}
    for signal in (0.0, 1.0):
        simulate(tmp_path / str(signal), visitors=3_000, days=30, seed=11, signal=signal)
        p[signal] = _application_placebo_p_value(tmp_path / str(signal))
    assert p[0.0] > 0.05, "what visitors apply for depends on what they browsed in the placebo world"
    assert p[1.0] < 0.01, "the test has no power: at signal 1 visitors apply for what they researched"


def test_signal_zero_app_behaviour_ignores_the_web_world(tmp_path: Path) -> None:
    """With signal 0, a different web world (intent mix) leaves every app view and click unchanged."""
    cols = ["view_id", "customer_id", "ts", "tiles_shown", "tile_clicked", "click_ts"]
    simulate(tmp_path / "a", visitors=300, days=14, seed=5, signal=0.0)
    simulate(tmp_path / "b", visitors=300, days=14, seed=5, signal=0.0,
             config=SimConfig(intent_mix={"mortgage_refinance": 20.0, "rewards_card": 10.0}))  # fmt: skip
    a, b = read(tmp_path / "a", "app_home"), read(tmp_path / "b", "app_home")
    assert not a.recent_intent.equals(b.recent_intent)  # the web side did change
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_shifted_config_changes_the_world(tmp_path: Path) -> None:
    cfg = load_config("shifted")
    assert cfg.name == "shifted" and len(cfg.extra_pages) >= 10
    simulate(tmp_path / "base", visitors=300, days=14, seed=2)
    simulate(tmp_path / "shift", visitors=300, days=14, seed=2, config="shifted")
    base, shift = good_events(tmp_path / "base"), good_events(tmp_path / "shift")
    new_paths = tuple(p.path for p in cfg.extra_pages)
    assert not base.url.str.contains("|".join(new_paths), regex=False).any()
    assert shift.url.map(lambda u: any(p in u for p in new_paths)).sum() > 20
    mobile = [(d[d.platform == "web"].device == "mobile").mean() for d in (base, shift)]
    assert mobile[1] > mobile[0] + 0.1
    manifest = json.loads((tmp_path / "shift/truth/manifest.json").read_text())
    assert manifest["config"]["name"] == "shifted"


@pytest.mark.parametrize(
    "bad",
    [
        {"no_such_knob": 1},
        {"intent_mix": {"not_an_intent": 2.0}},
        {"device_mix": {"smartwatch": 2.0}},
        {"extra_pages": [{"path": "/x", "title": "X", "group": "no_group", "kind": "product"}]},
        {"extra_pages": [{"path": "/credit-cards", "title": "dup", "group": "cards_hub", "kind": "hub"}]},
        {"mixed_share": 1.5},
    ],
)
def test_bad_configs_fail_with_a_message(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build_world(config_from_dict(bad))


def test_several_batches_keep_ids_unique(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim_generate, "BATCH_PEOPLE", 120)
    simulate(tmp_path, visitors=400, days=14, seed=9)
    t, c = read(tmp_path, "sessions"), read(tmp_path, "customers")
    assert t.person_id.max() >= 360 and t.sim_session_id.is_unique and c.customer_id.is_unique
    assert (t.dropna(subset=["person_id"]).groupby("visitor_id").person_id.nunique() == 1).all()
    assert t.n_events.sum() == len(good_events(tmp_path))


def test_cli_prints_a_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["simulate", "--visitors", "120", "--days", "7", "--seed", "1", "--signal", "0", "--quiet",
               "--out", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    for word in ("events", "web sessions", "customers", "app views", "conversions", "bad rows"):
        assert word in result.output
    assert (tmp_path / "events.parquet").is_file() and (tmp_path / "truth" / "sessions.parquet").is_file()
    bad = CliRunner().invoke(main, ["simulate", "--signal", "2", "--out", str(tmp_path)])
    assert bad.exit_code != 0


@pytest.mark.parametrize(
    "cfg",
    [
        SimConfig(customer_share=0.0, bot_share=0.0, bad_rows_per_reason=0),
        SimConfig(customer_share=1.0, mixed_share=1.0),
    ],
)
def test_tiny_and_extreme_worlds_still_reconcile(tmp_path: Path, cfg: SimConfig) -> None:
    summary = simulate(tmp_path, visitors=3, days=1, seed=0, config=cfg)
    t = read(tmp_path, "sessions")
    assert summary.events == len(read(tmp_path, "events")) and t.n_events.sum() == len(good_events(tmp_path))
