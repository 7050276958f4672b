"""Web sessions of a batch: journeys (journeys.py) timed, expanded into raw web events, plus bots.

Each page of a journey becomes a page view (or a search), and inside its dwell time the form, login,
click and logout events that page calls for. Sessions of one person never overlap and start at least an
hour after the previous one ends; each lasts under 12 h with under 512 events and no gap over 30 min, so
the default sessionizer recovers every simulated session exactly. Bot sessions crawl random public pages
at machine speed from a fresh cookie each. No Python loop per event or per session. Internal referrers,
scrolling and page content are not modelled; the referrer is set on a session's landing event only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from clickintent.schema import KNOWN_EVENT_TYPES, TS
from clickintent.sim import strings as s
from clickintent.sim.applications import Applications, decide
from clickintent.sim.intents import DEVICES
from clickintent.sim.journeys import DAY_US, US, Plan, Steps, pick_pages, plan_sessions, run_journeys
from clickintent.sim.people import People
from clickintent.sim.truth import web_truth
from clickintent.sim.weburls import put, referrers, step_urls
from clickintent.sim.world import APPLY, World, run_first, run_last

ET = {name: i for i, name in enumerate(KNOWN_EVENT_TYPES)}
MAX_GAP_MS = 15 * 60 * 1000  # longest time on a page: journeys.MAX_STEPS * MAX_GAP stays under 12 h
MIN_DWELL_MS = 1_500
SESSION_GAP_US = 3_600 * US  # least time between two sessions of one person (sessionizer splits at 30 min)
CLICK_SHARE = 0.3  # chance of a tracked click on a page
LOGOUT_SHARE = 0.3  # chance a signed-in session ends with a logout
EXIT_DWELL_NULL = 0.7  # the exit page's dwell is usually unknown
DWELL_NULL = 0.03  # otherwise a beacon is lost now and then
BOT_PAGES = (10, 150)  # fewest and most pages of a bot session
SEARCH_HOLE = 4  # page_placeholder code of "{q}"


@dataclass(frozen=True)
class PageSteps:
    """Every page of every session of the batch, humans first then bots, sorted by (session, step)."""

    sess: np.ndarray
    page: np.ndarray
    gap_us: np.ndarray  # time from this page's view to the next
    dwell_ms: np.ndarray  # -1 when unknown (bots)
    intent: np.ndarray  # -1 for bots
    login: np.ndarray  # a sign-in happens on this page
    block: np.ndarray  # one of the four application pages drawn after every human visit (kept if it applies)


@dataclass(frozen=True)
class Timeline:
    """Where each event of the batch's web sessions falls. Events are sorted by (session, time)."""

    n_human: int
    n_bots: int
    start_us: np.ndarray  # (sessions,) absolute ts of the first event
    duration_us: np.ndarray  # (sessions,) last event minus first
    n_events: np.ndarray  # (sessions,)
    logged_in: np.ndarray  # (sessions,) bool
    ev_sess: np.ndarray  # (events,) session
    ev_step: np.ndarray  # (events,) row of PageSteps
    ev_type: np.ndarray  # (events,) index into KNOWN_EVENT_TYPES
    ev_ts: np.ndarray  # (events,) absolute microseconds
    ev_main: np.ndarray  # (events,) the page view / search itself, not an event inside it


@dataclass(frozen=True)
class WebBatch:
    """Web events of a batch and the truth that goes with them."""

    events: pa.Table
    sessions: pa.Table  # truth rows (truth.SESSIONS)
    conversions: pa.Table  # truth rows (truth.CONVERSIONS)
    recent: dict[str, np.ndarray]  # human sessions, for the app's recent-intent lookup
    bait: dict[str, list[str]]  # PII bait values, by where they were put


def generate_web(rng: np.random.Generator, r_apply: np.random.Generator, world: World, people: People, days: int,
                 t0_us: int, first_session: int, batch: int, ids: dict[str, pa.Array],
                 signal: float) -> WebBatch:  # fmt: skip
    """All web sessions (human and bot) of one batch of people. `ids` as made by generate._ids.

    Every human visit is drawn with its four application pages after it, from `rng`, and the pages are
    kept only for the visits that apply on the web (`r_apply`, applications.py): so the random draws, the
    timing and the pages before any application are the same at every signal.
    """
    plan = plan_sessions(rng, world, people, days)
    apps = decide(r_apply, world, people, plan, signal)
    steps = _page_steps(rng, world, plan, apps)
    tl = _timeline(rng, world, plan, steps, days, t0_us)
    applies = np.r_[apps.on_web, np.zeros(tl.n_bots, bool)]
    events, visitor, bait = _events_table(rng, world, plan, steps, tl, batch, ids, applies)
    keep = ~steps.block[tl.ev_step] | applies[tl.ev_sess]
    events, tl = events.filter(pa.array(keep)), _keep_events(tl, keep)
    truth, conversions, recent = web_truth(
        world, people, plan, apps, tl, first_session, visitor, ids, steps.page[tl.ev_step]
    )
    return WebBatch(events, truth, conversions, recent, bait)


def _with_application_pages(plan: Plan, steps: Steps, apps: Applications) -> tuple[Steps, np.ndarray]:
    """The journeys' steps with four application steps after each session, and which rows those are.
    Their product is the one applied for where the visit applies on the web (the rest are dropped later)."""
    S = len(plan.person)
    k = len(APPLY)
    sess = np.repeat(np.arange(S), k)
    product = np.where(apps.on_web, apps.product, plan.product1)
    rows = Steps(sess, np.tile(np.array(APPLY), S), plan.intent1[sess], product[sess], np.zeros(S * k, bool))
    order = np.argsort(np.r_[steps.sess, rows.sess], kind="stable")  # each visit's journey, then its block
    merged = Steps(*(np.r_[a, b][order] for a, b in zip(
        (steps.sess, steps.state, steps.intent, steps.product, steps.login),
        (rows.sess, rows.state, rows.intent, rows.product, rows.login), strict=True)))  # fmt: skip
    return merged, np.r_[np.zeros(len(steps.sess), bool), np.ones(S * k, bool)][order]


def _page_steps(rng: np.random.Generator, world: World, plan: Plan, apps: Applications) -> PageSteps:
    """Human journeys (each with its application pages) with their pace, then bot crawls, as one table."""
    steps, block = _with_application_pages(plan, run_journeys(rng, world, plan), apps)
    page = pick_pages(rng, world, steps)
    # time on a page: the intent's pace times the page kind, log-normal, capped under the 30 min gap
    median_ms = world.dwell_s[steps.intent] * world.page_dwell[page] * 1000
    dwell = np.clip(median_ms * np.exp(rng.normal(0, 0.7, len(page))), MIN_DWELL_MS, MAX_GAP_MS).astype(np.int64)
    gap = (dwell + rng.integers(150, 1500, len(page))) * 1000

    S = len(plan.person)
    n_bots = int(rng.binomial(S, min(world.cfg.bot_share, 1.0)))
    n_pages = np.exp(rng.uniform(np.log(BOT_PAGES[0]), np.log(BOT_PAGES[1]), n_bots)).astype(np.int64)
    bot = np.repeat(np.arange(n_bots), n_pages)
    pace_us = rng.uniform(0.4, 3.0, n_bots) * US  # steady, machine-like
    bot_gap = (pace_us[bot] * rng.uniform(0.9, 1.1, len(bot))).astype(np.int64) + 1000
    none = np.full(len(bot), -1)
    return PageSteps(
        sess=np.r_[steps.sess, S + bot],
        page=np.r_[page, world.bot_pages[rng.integers(0, len(world.bot_pages), len(bot))]],
        gap_us=np.r_[gap, bot_gap],
        dwell_ms=np.r_[dwell, none],
        intent=np.r_[steps.intent, none],
        login=np.r_[steps.login, np.zeros(len(bot), bool)],
        block=np.r_[block, np.zeros(len(bot), bool)],
    )


def _timeline(rng: np.random.Generator, world: World, plan: Plan, st: PageSteps, days: int,
              t0_us: int) -> Timeline:  # fmt: skip
    """Expand pages into events at offsets inside each page's time, then place sessions in the window."""
    S = len(plan.person)
    n = int(st.sess.max(initial=S - 1)) + 1
    T = len(st.sess)
    starts = np.flatnonzero(run_first(st.sess))
    cs = np.cumsum(st.gap_us) - st.gap_us
    offset = cs - np.repeat(cs[starts], np.diff(np.r_[starts, T]))  # page view time within its session

    logged_in = np.zeros(n, bool)
    logged_in[st.sess[st.login]] = True
    human = st.sess < S
    form = world.page_form[st.page]
    searchable = world.page_placeholder[st.page] == SEARCH_HOLE
    parts = [  # (pages, event type, fraction of the page's time at which it happens)
        (np.arange(T), np.where(searchable, ET["search"], ET["page_view"]), 0.0),
        (np.flatnonzero(human & (form == 1)), ET["form_start"], 0.3),
        (np.flatnonzero(human & (form == 2)), ET["form_submit"], 0.3),
        (np.flatnonzero(st.login), ET["login"], 0.5),
        (np.flatnonzero(human & ~searchable & (rng.random(T) < CLICK_SHARE)), ET["click"], 0.8),
        (
            np.flatnonzero(human & _visit_last(st) & logged_in[st.sess] & (rng.random(T) < LOGOUT_SHARE)),
            ET["logout"],
            0.9,
        ),
    ]
    ev_step = np.concatenate([p[0] for p in parts])
    ev_type = np.concatenate([np.broadcast_to(np.asarray(p[1]), p[0].shape) for p in parts])
    ev_main = np.r_[np.ones(T, bool), np.zeros(len(ev_step) - T, bool)]
    frac = np.concatenate([np.full(len(p[0]), p[2]) for p in parts])
    ev_off = offset[ev_step] + (frac * st.gap_us[ev_step]).astype(np.int64)
    order = np.lexsort((ev_off, st.sess[ev_step]))
    ev_step, ev_type, ev_main, ev_off = ev_step[order], ev_type[order], ev_main[order], ev_off[order]
    ev_sess = st.sess[ev_step]
    ev_last = run_last(ev_sess)
    duration = np.zeros(n, np.int64)
    duration[ev_sess[ev_last]] = ev_off[ev_last]

    # human sessions of one person in their wished order, an hour apart at least; bots anywhere
    start = np.r_[schedule(plan.person, plan.wish_start_us, duration[:S]), rng.integers(0, days * DAY_US, n - S)]
    start += t0_us
    return Timeline(S, n - S, start, duration, np.bincount(ev_sess, minlength=n), logged_in, ev_sess, ev_step,
                    ev_type, start[ev_sess] + ev_off, ev_main)  # fmt: skip


def _visit_last(st: PageSteps) -> np.ndarray:
    """The last page of each session before its application pages (the last page of a bot's crawl)."""
    nxt_block = np.r_[st.block[1:], False] & np.r_[st.sess[1:] == st.sess[:-1], False]
    result: np.ndarray = ~st.block & (run_last(st.sess) | nxt_block)
    return result


def _keep_events(tl: Timeline, keep: np.ndarray) -> Timeline:
    """The timeline of the events kept (application pages of visits that do not apply are dropped)."""
    ev_sess, ev_ts = tl.ev_sess[keep], tl.ev_ts[keep]
    n = len(tl.start_us)
    last = run_last(ev_sess)
    duration = np.zeros(n, np.int64)
    duration[ev_sess[last]] = ev_ts[last] - tl.start_us[ev_sess[last]]
    return Timeline(tl.n_human, tl.n_bots, tl.start_us, duration, np.bincount(ev_sess, minlength=n), tl.logged_in,
                    ev_sess, tl.ev_step[keep], tl.ev_type[keep], ev_ts, tl.ev_main[keep])  # fmt: skip


def schedule(person: np.ndarray, wish: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """Start times: each person's sessions in wished order, pushed later so they never come closer than
    SESSION_GAP_US after the previous one's end. One vectorised pass per session rank."""
    order = np.lexsort((wish, person))
    p, w, d = person[order], wish[order], duration[order]
    new = run_first(p)
    rank = np.arange(len(p)) - np.maximum.accumulate(np.where(new, np.arange(len(p)), 0))
    out = w.copy()
    for r in range(1, int(rank.max(initial=0)) + 1):
        i = np.flatnonzero(rank == r)
        out[i] = np.maximum(w[i], out[i - 1] + d[i - 1] + SESSION_GAP_US)
    start = np.empty_like(out)
    start[order] = out
    return start


def _events_table(rng: np.random.Generator, world: World, plan: Plan, st: PageSteps, tl: Timeline, batch: int,
                  ids: dict[str, pa.Array],
                  applies: np.ndarray) -> tuple[pa.Table, pa.Array, dict[str, list[str]]]:  # fmt: skip
    """The raw web events of the batch in the source contract, each session's visitor id, and the PII
    bait put into the events. `applies`: the sessions whose application pages are kept."""
    S, B, T = tl.n_human, tl.n_bots, len(st.sess)
    # who: the session's cookie; bots get a fresh one each (keys far above any person's cookies)
    bot_keys = 1_000_000_000 + batch * 1_000_000 + np.arange(B)
    bot_vid = s.cat(s.digits(s.scramble(bot_keys, 10**10, 2_654_435_761, 7), 10), ".",
                    s.digits(tl.start_us[S:] // US, 10))  # fmt: skip
    visitor = pa.concat_arrays([ids["cookie"].take(pa.array(plan.person * world.cfg.max_cookies + plan.cookie)),
                                bot_vid])  # fmt: skip
    person = np.r_[plan.person, np.full(B, -1)]

    # what: search text (now and then PII typed into the box), URLs, referrers
    intent = np.maximum(st.intent, 0)
    q_idx = world.query_start[intent] + (rng.random(T) * world.query_count[intent]).astype(np.int64)
    bait_mask = (world.page_placeholder[st.page] == SEARCH_HOLE) & (rng.random(T) < world.cfg.pii_share)
    bait_text, bait_value = s.pii_queries(rng, int(bait_mask.sum()))
    query = put(s.take(world.queries, q_idx), bait_mask, bait_text)
    first = run_first(st.sess)
    url, bait_url = step_urls(rng, world, plan, st.page, st.sess, first, person, query, ids["acct"], S, B)
    referrer = referrers(rng, world, plan, B)

    ev, es = pa.array(tl.ev_step), pa.array(tl.ev_sess)
    dwell = st.dwell_ms[tl.ev_step]
    exit_page = np.where(applies[st.sess], run_last(st.sess), _visit_last(st))[tl.ev_step]
    null_dwell = ~tl.ev_main | (dwell < 0) | (exit_page & (rng.random(len(dwell)) < EXIT_DWELL_NULL))
    null_dwell |= rng.random(len(dwell)) < DWELL_NULL
    customer = ids["customer"].take(pa.array(np.maximum(person, 0)))
    n_ev = len(tl.ev_step)
    events = pa.table({
        "visitor_id": visitor.take(es),
        "ts": pa.array(tl.ev_ts).cast(TS),
        "url": url.take(ev),
        "page_title": s.take(world.page_title, st.page[tl.ev_step]),
        "event_type": s.take(KNOWN_EVENT_TYPES, tl.ev_type),
        "device": s.take(DEVICES, np.r_[plan.device, np.zeros(B, np.int64)]).take(es),
        "referrer": s.if_else(tl.ev_main & first[tl.ev_step], referrer.take(es), s.NULL_STR),
        "search_query": s.if_else(tl.ev_type == ET["search"], query.take(ev), s.NULL_STR),
        "dwell_ms": pa.array(dwell, mask=null_dwell),
        "platform": pa.repeat("web", n_ev),
        "customer_id": s.if_else(tl.ev_type == ET["login"], customer.take(es), s.NULL_STR),
        "session_id": pa.nulls(n_ev, pa.string()),
    })  # fmt: skip
    return events, visitor, {"search_query": bait_value.to_pylist(), "url": bait_url}
