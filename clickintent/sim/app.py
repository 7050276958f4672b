"""App sessions: a logged-in customer opens the app, sees 8-12 product tiles, clicks one or none.

The tiles shown come from the bank's current ranker, which knows only the profile (segment and past
clicks). The click is a random-utility choice: profile appeal (segment, holdings, private taste) plus,
weighted by `signal`, a pull towards the products of the person's most recent web intent, plus Gumbel
noise, against a "no click" option. With signal 0 nothing about web intent enters: the placebo world.
An app session also holds a few servicing screens and, after some clicks, an in-app application.
Not modelled: push notifications, app sessions that never show the home page, ranker feedback loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from clickintent.schema import KNOWN_EVENT_TYPES, TS
from clickintent.sim import strings as s
from clickintent.sim.journeys import DAY_US, HOURS, US
from clickintent.sim.people import TILE_BASE, People, tile_utility
from clickintent.sim.products import PRODUCT_IDS, PRODUCTS
from clickintent.sim.truth import APP_HOME, CONVERSIONS, SESSIONS, session_ids
from clickintent.sim.web import schedule
from clickintent.sim.world import World, run_first, run_last

P = len(PRODUCT_IDS)
TILES = (8, 12)  # fewest and most tiles on the home page
NO_CLICK_UTILITY = 1.6  # appeal of closing the home page without a tile click
RANKER_NOISE = 1.0  # Gumbel scale of the production ranker
PAST_DAYS = 90
SCREENS = (
    ("app://accounts", "Accounts"),
    ("app://accounts/activity", "Activity"),
    ("app://transfers", "Transfer money"),
    ("app://bill-pay", "Pay bills"),
    ("app://deposit", "Deposit a check"),
    ("app://cards", "Cards"),
    ("app://zelle", "Send with Zelle"),
    ("app://statements", "Statements"),
    ("app://settings", "Settings"),
    ("app://rewards", "Rewards"),
)
DEVICES = ("ios", "android")


def past_behaviour(rng: np.random.Generator, people: People) -> tuple[np.ndarray, np.ndarray]:
    """Past 90 days of app use: opens and tile clicks per product, from the profile-only click model."""
    opens = rng.poisson(people.app_rate * PAST_DAYS)
    u = np.exp(tile_utility(people))
    shown_share = np.mean(TILES) / P
    p_click = shown_share * u / (np.exp(NO_CLICK_UTILITY) + shown_share * u.sum(1, keepdims=True))
    return opens, rng.poisson(opens[:, None] * p_click)


@dataclass(frozen=True)
class AppBatch:
    events: pa.Table
    sessions: pa.Table  # truth.SESSIONS rows, platform 'app'
    app_home: pa.Table  # truth.APP_HOME
    conversions: pa.Table  # truth.CONVERSIONS, channel 'app'


@dataclass(frozen=True)
class Visits:
    """One row per app session (= home-page view): when, and what the customer did there."""

    person: np.ndarray
    start_us: np.ndarray  # absolute ts of app_open
    click_off: np.ndarray  # offsets (us) reserved for the tile click, the offer page, the application
    offer_off: np.ndarray
    apply_off: np.ndarray
    screen_sess: np.ndarray  # servicing screens: visit, offset, which screen
    screen_off: np.ndarray
    screen: np.ndarray
    tiles: np.ndarray  # products shown, flattened in screen order
    n_tiles: np.ndarray
    choice: np.ndarray  # best tile (product index), meaningful where clicked
    clicked: np.ndarray
    applied: np.ndarray
    recent_intent: np.ndarray  # -1: no web session in the lookback
    recent_session: np.ndarray
    p_tiles: np.ndarray  # P(tile | click), flattened like `tiles`: with the web pull
    p_tiles_profile: np.ndarray  # the same from the profile alone


def generate_app(
    rng: np.random.Generator,
    world: World,
    people: People,
    days: int,
    t0_us: int,
    first_session: int,
    first_view: int,
    ids: dict[str, pa.Array],
    past_clicks: np.ndarray,
    recent: dict[str, np.ndarray],
    signal: float,
) -> AppBatch:
    """App sessions and home-page views of one batch of people. `ids` as made by generate._ids."""
    v = _visits(rng, world, people, days, t0_us, past_clicks, recent, signal)
    events, end, n_events = _events(rng, v, people, ids)
    sid = session_ids(first_session, len(v.person))
    view_id = s.cat("V", s.digits(np.arange(first_view, first_view + len(v.person)), 9))
    return AppBatch(events, *_truth(world, people, v, ids, sid, view_id, end, n_events))


def _visits(
    rng: np.random.Generator,
    world: World,
    people: People,
    days: int,
    t0_us: int,
    past_clicks: np.ndarray,
    recent: dict[str, np.ndarray],
    signal: float,
) -> Visits:
    cfg = world.cfg
    person = np.repeat(np.arange(people.n), rng.poisson(people.app_rate * days))
    V = len(person)
    # the session's shape, with time reserved for a click, the offer and an application either way, so
    # scheduling (which must come before the choice: the choice looks at recent web sessions) is safe
    click_off = rng.integers(2, 20, V) * US
    offer_off = click_off + rng.integers(1, 4, V) * US
    apply_off = offer_off + rng.integers(30, 240, V) * US
    n_screens = np.minimum(rng.poisson(1.5, V), 6)
    screen_sess = np.repeat(np.arange(V), n_screens)
    screen_gap = (np.clip(rng.lognormal(np.log(12.0), 0.7, len(screen_sess)), 1.0, 600.0) * US).astype(np.int64)
    screen_off = apply_off[screen_sess] + 2 * US + _cumsum_within(screen_gap, screen_sess)
    planned_end = apply_off.copy()
    np.maximum.at(planned_end, screen_sess, screen_off)
    hour = rng.choice(24, size=V, p=HOURS / HOURS.sum())
    wish = rng.integers(0, days, V) * DAY_US + hour * 3600 * US + rng.integers(0, 3600 * US, V)
    start = t0_us + schedule(person, wish, planned_end)

    # the ranker's tiles: profile score + Gumbel noise, top k, in rank order
    rank_score = _ranker_score(people, past_clicks)[person] + RANKER_NOISE * rng.gumbel(size=(V, P))
    k = rng.integers(TILES[0], TILES[1] + 1, V)
    order = np.argsort(-rank_score, axis=1, kind="stable")
    in_top_k = np.arange(P)[None, :] < k[:, None]
    shown = np.zeros((V, P), bool)
    shown[np.arange(V)[:, None], order] = in_top_k

    # the customer's choice: profile appeal + signal-weighted pull of the recent web intent + noise
    r_intent, r_session, r_age_days = _recent(recent, person, start, cfg.lookback_days)
    profile = tile_utility(people)[person]
    full = profile + signal * np.log(cfg.tile_odds_ratio) * _pull(world, r_intent, r_age_days)
    util = np.where(shown, full + rng.gumbel(size=(V, P)), -np.inf)
    best = util.argmax(axis=1)
    clicked = util[np.arange(V), best] > NO_CLICK_UTILITY + rng.gumbel(size=V)
    return Visits(
        person=person,
        start_us=start,
        click_off=click_off,
        offer_off=offer_off,
        apply_off=apply_off,
        screen_sess=screen_sess,
        screen_off=screen_off,
        screen=rng.integers(0, len(SCREENS), len(screen_sess)),
        tiles=order[in_top_k],
        n_tiles=k,
        choice=best,
        clicked=clicked,
        applied=clicked & (rng.random(V) < cfg.app_apply),
        recent_intent=r_intent,
        recent_session=r_session,
        p_tiles=_shown_softmax(full, order, in_top_k),
        p_tiles_profile=_shown_softmax(profile, order, in_top_k),
    )


def _pull(world: World, intent: np.ndarray, age_days: np.ndarray) -> np.ndarray:
    """(V, P) 0..1: how much the recent web intent pulls each tile, halving every product's half-life."""
    affinity = np.where(intent[:, None] >= 0, world.affinity[np.maximum(intent, 0)], 0.0)
    result: np.ndarray = affinity * np.exp2(-age_days[:, None] / world.half_life_days[None, :])
    return result


def _shown_softmax(utility: np.ndarray, order: np.ndarray, shown: np.ndarray) -> np.ndarray:
    """P(tile | a tile is clicked) of the shown tiles, flattened in screen order (the Gumbel choice is a
    multinomial logit, so given a click the no-click option drops out)."""
    ranked = np.take_along_axis(utility, order, axis=1)
    z = np.where(shown, ranked, -np.inf)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    result: np.ndarray = (e / e.sum(axis=1, keepdims=True))[shown].astype(np.float32)
    return result


def _events(
    rng: np.random.Generator, v: Visits, people: People, ids: dict[str, pa.Array]
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """App events: open, [tile click, offer, application], servicing screens. Also each visit's end and size."""
    V = len(v.person)
    c, a = np.flatnonzero(v.clicked), np.flatnonzero(v.applied)
    zero = np.zeros(V, np.int64)
    parts = [  # (visit, offset, kind, screen)
        (np.arange(V), zero, 0, zero),
        (c, v.click_off[c], 1, zero[c]),
        (c, v.offer_off[c], 2, zero[c]),
        (a, v.apply_off[a], 3, zero[a]),
        (v.screen_sess, v.screen_off, 4, v.screen),
    ]
    ev_sess, ev_off, ev_screen = (np.concatenate([p[i] for p in parts]) for i in (0, 1, 3))
    ev_kind = np.concatenate([np.full(len(p[0]), p[2]) for p in parts])
    o = np.lexsort((ev_off, ev_sess))
    ev_sess, ev_kind, ev_screen = ev_sess[o], ev_kind[o], ev_screen[o]
    ev_ts = v.start_us[ev_sess] + ev_off[o]
    last = run_last(ev_sess)
    end = np.zeros(V, np.int64)
    end[ev_sess[last]] = ev_ts[last]

    prod = v.choice[ev_sess]
    slug, name = s.take([p.slug for p in PRODUCTS], prod), s.take([p.name for p in PRODUCTS], prod)
    url = _by_kind(ev_kind, ["app://home", s.cat("app://home/tiles/", slug), s.cat("app://offers/", slug),
                             s.cat("app://apply/", slug), s.take([x[0] for x in SCREENS], ev_screen)])  # fmt: skip
    title = _by_kind(ev_kind, ["Home", name, name, s.cat("Apply: ", name), s.take([x[1] for x in SCREENS], ev_screen)])
    kinds = ("app_open", "tile_click", "page_view", "form_submit", "page_view")
    etype = np.array([KNOWN_EVENT_TYPES.index(e) for e in kinds])[ev_kind]
    # dwell: time to the next event of the visit; unknown on the last, meaningless on clicks and submits
    dwell = np.r_[np.diff(ev_ts), 0][: len(ev_ts)] // 1000
    ev = pa.array(v.person[ev_sess])
    n = len(ev_sess)
    events = pa.table({
        "visitor_id": ids["app"].take(ev),
        "ts": pa.array(ev_ts).cast(TS),
        "url": url,
        "page_title": title,
        "event_type": s.take(KNOWN_EVENT_TYPES, etype),
        "device": s.take(DEVICES, (people.first_id + v.person[ev_sess]) % 2),
        "referrer": pa.nulls(n, pa.string()),
        "search_query": pa.nulls(n, pa.string()),
        "dwell_ms": pa.array(dwell, mask=last | (ev_kind == 1) | (ev_kind == 3)),
        "platform": pa.repeat("app", n),
        "customer_id": ids["customer"].take(ev),
        "session_id": pa.nulls(n, pa.string()),
    })  # fmt: skip
    return events, end, np.bincount(ev_sess, minlength=V)


def _truth(
    world: World,
    people: People,
    v: Visits,
    ids: dict[str, pa.Array],
    sid: pa.Array,
    view_id: pa.Array,
    end: np.ndarray,
    n_events: np.ndarray,
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Session truth, home-page views and in-app applications of the visits."""
    V = len(v.person)
    who = pa.array(v.person)
    vid, cust = ids["app"].take(who), ids["customer"].take(who)
    sessions = pa.table({
        "sim_session_id": sid,
        "visitor_id": vid,
        "platform": pa.repeat("app", V),
        "start": pa.array(v.start_us).cast(TS),
        "end": pa.array(end).cast(TS),
        "n_events": pa.array(n_events.astype(np.int32)),
        "person_id": pa.array(people.first_id + v.person),
        "customer_id": cust,
        "logged_in": pa.repeat(True, V),
        "intent": pa.nulls(V, pa.string()),
        "intents": pa.ListArray.from_arrays(pa.array(np.zeros(V + 1, np.int32)), pa.array([], pa.string())),
        "is_bot": pa.repeat(False, V),
        "is_mixed": pa.repeat(False, V),
        "product": pa.nulls(V, pa.string()),
        "p_apply": pa.nulls(V, pa.list_(pa.float32())),
        "p_apply_profile": pa.nulls(V, pa.list_(pa.float32())),
        "p_app_channel": pa.nulls(V, pa.float32()),
    }, schema=SESSIONS)  # fmt: skip
    recent = v.recent_intent >= 0
    intents = [i.name for i in world.intents]
    offsets = pa.array(np.r_[0, np.cumsum(v.n_tiles)].astype(np.int32))
    app_home = pa.table({
        "view_id": view_id,
        "sim_session_id": sid,
        "customer_id": cust,
        "visitor_id": vid,
        "ts": pa.array(v.start_us).cast(TS),
        "tiles_shown": pa.ListArray.from_arrays(offsets, s.take(PRODUCT_IDS, v.tiles)),
        "tile_clicked": s.if_else(v.clicked, s.take(PRODUCT_IDS, v.choice), s.NULL_STR),
        "click_ts": pa.array(v.start_us + v.click_off, mask=~v.clicked).cast(TS),
        "recent_intent": s.if_else(recent, s.take(intents, np.maximum(v.recent_intent, 0)), s.NULL_STR),
        "recent_session_id": s.if_else(recent, s.cat("S", s.digits(np.maximum(v.recent_session, 0), 9)),
                                       s.NULL_STR),
        "p_tiles": pa.ListArray.from_arrays(offsets, pa.array(v.p_tiles, pa.float32())),
        "p_tiles_profile": pa.ListArray.from_arrays(offsets, pa.array(v.p_tiles_profile, pa.float32())),
    }, schema=APP_HOME)  # fmt: skip
    a = np.flatnonzero(v.applied)
    conversions = pa.table({
        "person_id": pa.array(people.first_id + v.person[a]),
        "customer_id": cust.take(pa.array(a)),
        "visitor_id": vid.take(pa.array(a)),
        "product": s.take(PRODUCT_IDS, v.choice[a]),
        "ts": pa.array(v.start_us[a] + v.apply_off[a]).cast(TS),
        "channel": pa.repeat("app", len(a)),
        "web_session_id": pa.nulls(len(a), pa.string()),
        "app_view_id": view_id.take(pa.array(a)),
    }, schema=CONVERSIONS)  # fmt: skip
    return sessions, app_home, conversions


def _ranker_score(people: People, past_clicks: np.ndarray) -> np.ndarray:
    """What the production ranker believes: segment appeal and past clicks, no web intent."""
    return TILE_BASE[people.segment] + 0.5 * np.log1p(past_clicks)


def _cumsum_within(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Inclusive cumulative sum restarting at each new value of a sorted `group`."""
    cs = np.cumsum(values)
    if len(values) == 0:
        return cs
    starts = run_first(group)
    base = np.maximum.accumulate(np.where(starts, cs - values, 0))
    return cs - base


def _recent(
    recent: dict[str, np.ndarray], person: np.ndarray, ts_us: np.ndarray, lookback_days: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each view, the person's latest web session that ended before it within the lookback:
    its intent (-1 if none), its global session number and its age in days."""
    key_scale = 10**10  # seconds; persons are batch-local, so keys stay far below 2**63
    keys = recent["person"] * key_scale + recent["end_us"] // US
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    q = person * key_scale + ts_us // US
    i = np.searchsorted(keys, q, side="left") - 1
    ok = i >= 0
    j = order[np.maximum(i, 0)]
    age = (ts_us - recent["end_us"][j]) / DAY_US
    ok &= (recent["person"][j] == person) & (age <= lookback_days) & (age > 0)
    return (
        np.where(ok, recent["intent"][j], -1),
        np.where(ok, recent["session"][j], -1),
        np.where(ok, age, 0.0),
    )


def _by_kind(kind: np.ndarray, options: list[pa.Array | str]) -> pa.Array:
    out: pa.Array | str = options[-1]
    for code in range(len(options) - 2, -1, -1):
        out = s.if_else(kind == code, options[code], out)
    assert isinstance(out, pa.Array)
    return out
