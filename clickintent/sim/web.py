"""Web sessions: plan them, walk each intent's Markov chain, expand steps into raw web events.

One call handles a batch of people at once: numpy draws for every session, one loop over journey steps
(each iteration advances all live sessions), no Python loop per event. Sessions of one person never
overlap and are at least an hour apart, each lasts under 12 h with under 512 events and no gap over
30 min, so the default sessionizer recovers every simulated session exactly. Bot sessions crawl random
public pages at machine speed from a fresh cookie each. Internal referrers, scrolling and page content
are not modelled; the referrer is set on a session's landing event only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clickintent.schema import KNOWN_EVENT_TYPES
from clickintent.sim import strings as s
from clickintent.sim.catalogue import SITE
from clickintent.sim.intents import DEVICES
from clickintent.sim.people import People, sample_intents
from clickintent.sim.products import PRODUCTS
from clickintent.sim.world import ACCOUNTS, APPLY, END, HELP_ACCESS, LOGIN, NO_PRODUCT, World, sample_rows

ET = {name: i for i, name in enumerate(KNOWN_EVENT_TYPES)}
US = 1_000_000  # microseconds per second
DAY_US = 86_400 * US
MAX_STEPS = 40  # pages per human session
MAX_GAP_MS = 15 * 60 * 1000  # longest time on a page: MAX_STEPS * MAX_GAP stays under 12 h
MIN_DWELL_MS = 1_500
SESSION_GAP_US = 3_600 * US  # least time between two sessions of one person (sessionizer splits at 30 min)
CLICK_SHARE = 0.3  # chance of a tracked click on a page
LOGOUT_SHARE = 0.3  # chance a signed-in session ends with a logout
EXIT_DWELL_NULL = 0.7  # the exit page's dwell is usually unknown
DWELL_NULL = 0.03  # otherwise a beacon is lost now and then
BOT_PAGES = (10, 150)
# When people browse: weight of each UTC hour of the day.
HOURS = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 4, 4.5, 5, 5.5, 5, 4.5, 4.5, 4.5, 5, 5.5, 6, 6, 5, 3.5, 2])

# Referrer variants: (type, referrer, referrer tail, landing query head, campaign?, query mid, tail)
# tails: "" none, "q" the session's search-engine text, "tok" a random token, "num" a number.
REFERRER_VARIANTS: tuple[tuple[str, str | None, str, str, bool, str, str], ...] = (
    ("direct", None, "", "", False, "", ""),
    ("organic", "https://www.google.com/search?q=", "q", "", False, "", ""),
    ("organic", "https://www.google.com/", "", "", False, "", ""),
    ("organic", "https://www.bing.com/search?q=", "q", "", False, "", ""),
    ("organic", "https://duckduckgo.com/?q=", "q", "", False, "", ""),
    (
        "paid",
        "https://www.google.com/",
        "",
        "utm_source=google&utm_medium=cpc&utm_campaign=",
        True,
        "&gclid=",
        "tok",
    ),
    (
        "paid",
        "https://www.bing.com/",
        "",
        "utm_source=bing&utm_medium=cpc&utm_campaign=",
        True,
        "&msclkid=",
        "tok",
    ),
    ("email", None, "", "utm_source=newsletter&utm_medium=email&utm_campaign=", True, "&mc_eid=", "tok"),
    (
        "email",
        "https://mail.google.com/",
        "",
        "utm_source=newsletter&utm_medium=email&utm_campaign=",
        True,
        "&mc_eid=",
        "tok",
    ),
    (
        "social",
        "https://www.facebook.com/",
        "",
        "utm_source=facebook&utm_medium=social&fbclid=",
        False,
        "",
        "tok",
    ),
    ("social", "https://t.co/", "tok", "utm_source=twitter&utm_medium=social", False, "", ""),
    ("social", "https://www.reddit.com/r/personalfinance/", "", "", False, "", ""),
    (
        "affiliate",
        "https://www.nerdwallet.com/",
        "",
        "utm_source=nerdwallet&utm_medium=affiliate&aff_id=",
        False,
        "",
        "num",
    ),
    (
        "affiliate",
        "https://www.bankrate.com/",
        "",
        "utm_source=bankrate&utm_medium=affiliate&aff_id=",
        False,
        "",
        "num",
    ),
    (
        "affiliate",
        "https://www.creditkarma.com/",
        "",
        "utm_source=creditkarma&utm_medium=affiliate&aff_id=",
        False,
        "",
        "num",
    ),
)


@dataclass(frozen=True)
class Plan:
    """Per human session: who, from which cookie and device, why, and when it would like to start."""

    person: np.ndarray  # local person index
    cookie: np.ndarray  # which of the person's cookies
    device: np.ndarray  # index into DEVICES
    intent1: np.ndarray
    intent2: np.ndarray  # -1 unless the session is mixed
    switch_at: np.ndarray  # step at which a mixed session turns to intent2
    product1: np.ndarray  # product of intent1 (NO_PRODUCT if none)
    product2: np.ndarray
    can_login: np.ndarray  # a customer who will sign in when the journey reaches the login page
    variant: np.ndarray  # index into REFERRER_VARIANTS
    wish_start_us: np.ndarray  # preferred start, before non-overlap is enforced


def plan_sessions(rng: np.random.Generator, world: World, people: People, days: int) -> Plan:
    cfg = world.cfg
    n_sess = 1 + rng.poisson(people.web_rate * days)
    person = np.repeat(np.arange(people.n), n_sess)
    S = len(person)
    intent1 = np.where(rng.random(S) < cfg.person_need, people.need[person], sample_intents(rng, people, person))
    intent2 = sample_intents(rng, people, person)
    mixed = (rng.random(S) < cfg.mixed_share) & (intent2 != intent1)
    intent2 = np.where(mixed, intent2, -1)
    product1 = sample_rows(rng, world.product_cum[intent1])
    product2 = np.where(mixed, sample_rows(rng, world.product_cum[np.maximum(intent2, 0)]), NO_PRODUCT)
    # the intent's device profile picks among the person's cookies (one device type each)
    j = np.arange(cfg.max_cookies)
    w = world.device_w[intent1[:, None], people.cookie_device[person]] * (j[None, :] < people.n_cookies[person, None])
    cookie = sample_rows(rng, np.cumsum(w / w.sum(1, keepdims=True), axis=1))
    rtype = sample_rows(rng, world.referrer_cum[intent1])
    variant = _pick_variant(rng, rtype)
    day = rng.integers(0, days, S)
    hour = rng.choice(24, size=S, p=HOURS / HOURS.sum())
    wish = day * DAY_US + hour * 3600 * US + rng.integers(0, 3600 * US, S)
    return Plan(
        person=person,
        cookie=cookie,
        device=people.cookie_device[person, cookie],
        intent1=intent1,
        intent2=intent2,
        switch_at=2 + rng.geometric(0.35, S),
        product1=product1,
        product2=product2,
        can_login=people.is_customer[person] & (rng.random(S) < cfg.login_success),
        variant=variant,
        wish_start_us=wish,
    )


def _pick_variant(rng: np.random.Generator, rtype: np.ndarray) -> np.ndarray:
    from clickintent.sim.intents import REFERRERS

    types = np.array([REFERRERS.index(v[0]) for v in REFERRER_VARIANTS])
    first = np.array([np.flatnonzero(types == t)[0] for t in range(len(REFERRERS))])
    count = np.bincount(types, minlength=len(REFERRERS))
    return first[rtype] + (rng.random(len(rtype)) * count[rtype]).astype(np.int64)


@dataclass(frozen=True)
class Steps:
    """One row per page of every journey, sorted by (session, step)."""

    sess: np.ndarray
    state: np.ndarray  # group index
    intent: np.ndarray  # intent at this step (-1 for bots)
    product: np.ndarray
    login: np.ndarray  # the customer signs in on this page


def run_journeys(rng: np.random.Generator, world: World, plan: Plan) -> Steps:
    """Walk every session's chain; mixed sessions switch chains at switch_at or when the first ends."""
    S = len(plan.person)
    cur = plan.intent1.copy()
    switched = np.zeros(S, bool)
    logged = np.zeros(S, bool)
    idx = np.arange(S)
    state = sample_rows(rng, world.entry_cum[cur])
    rec: list[tuple[np.ndarray, ...]] = []
    for t in range(MAX_STEPS):
        login = (state == LOGIN) & plan.can_login[idx] & ~logged[idx]
        logged[idx[login]] = True
        rec.append((idx, np.full(len(idx), t), state, switched[idx], login))
        if t == MAX_STEPS - 1:
            break
        nxt = sample_rows(rng, world.trans_cum[cur[idx], state])
        # account pages need a sign-in: others are sent to the login page, or from there to login help
        blocked = (nxt == ACCOUNTS) & ~logged[idx]
        nxt = np.where(blocked, np.where(state == LOGIN, HELP_ACCESS, LOGIN), nxt)
        sw = (plan.intent2[idx] >= 0) & ~switched[idx] & ((nxt == END) | (t + 1 >= plan.switch_at[idx]))
        if sw.any():
            j = idx[sw]
            cur[j] = plan.intent2[j]
            switched[j] = True
            nxt[sw] = sample_rows(rng, world.entry_cum[cur[j]])
        alive = nxt != END
        idx, state = idx[alive], nxt[alive]
        if len(idx) == 0:
            break
    sess, step, st, sw_at, login = (np.concatenate(c) for c in zip(*rec, strict=True))
    order = np.lexsort((step, sess))
    sess, st, sw_at, login = sess[order], st[order], sw_at[order], login[order]
    intent = np.where(sw_at, plan.intent2[sess], plan.intent1[sess])
    product = np.where(sw_at, plan.product2[sess], plan.product1[sess])
    return Steps(sess, st, intent, product, login)


def pick_pages(rng: np.random.Generator, world: World, steps: Steps) -> np.ndarray:
    """A page for each step from its group (weighted towards the session's product) or, rarely, noise."""
    choice = sample_rows(rng, world.pick_cum[steps.state, steps.product])
    page = world.pick_page[steps.state, choice]
    free = ~np.isin(steps.state, (LOGIN, ACCOUNTS, *APPLY)) & (world.page_placeholder[page] != 4)
    noise = free & (rng.random(len(page)) < world.cfg.noise_share)
    return np.where(noise, world.noise_pages[rng.integers(0, len(world.noise_pages), len(page))], page)


@dataclass(frozen=True)
class WebBatch:
    """Web events of a batch and the truth that goes with them."""

    events: pa.Table
    sessions: pa.Table  # truth rows (see generate.SESSION_TRUTH)
    conversions: pa.Table
    recent: dict[str, np.ndarray]  # human sessions for the app's recent-intent lookup
    bait: dict[str, list[str]]


def generate_web(
    rng: np.random.Generator,
    world: World,
    people: People,
    days: int,
    t0_us: int,
    first_session: int,
    batch: int,
    visitor_ids: pa.Array,
    acct: pa.Array,
    customer_ids: pa.Array,
) -> WebBatch:
    """All web sessions (human and bot) of one batch of people."""
    from clickintent.sim.truth import web_truth

    cfg = world.cfg
    plan = plan_sessions(rng, world, people, days)
    steps = run_journeys(rng, world, plan)
    page = pick_pages(rng, world, steps)
    S = len(plan.person)

    # time on each page: the intent's pace times the page kind, log-normal, capped under the 30 min gap
    median_ms = world.dwell_s[steps.intent] * world.page_dwell[page] * 1000
    dwell_ms = np.clip(median_ms * np.exp(rng.normal(0, 0.7, len(page))), MIN_DWELL_MS, MAX_GAP_MS).astype(np.int64)
    gap_us = (dwell_ms + rng.integers(150, 1500, len(page))) * 1000

    # bots: fresh cookie per session, random public pages at a steady machine pace
    n_bots = int(rng.binomial(S, min(cfg.bot_share, 1.0))) if cfg.bot_share > 0 else 0
    n_pages = np.exp(rng.uniform(np.log(BOT_PAGES[0]), np.log(BOT_PAGES[1]), n_bots)).astype(np.int64)
    bot_sess = S + np.repeat(np.arange(n_bots), n_pages)
    bot_page = world.bot_pages[rng.integers(0, len(world.bot_pages), len(bot_sess))]
    pace_us = rng.uniform(0.4, 3.0, n_bots) * US
    bot_gap = (pace_us[bot_sess - S] * rng.uniform(0.9, 1.1, len(bot_sess))).astype(np.int64) + 1000

    sess = np.concatenate([steps.sess, bot_sess])
    page = np.concatenate([page, bot_page])
    gap_us = np.concatenate([gap_us, bot_gap])
    dwell_ms = np.concatenate([dwell_ms, np.full(len(bot_sess), -1)])
    intent = np.concatenate([steps.intent, np.full(len(bot_sess), -1)])
    login = np.concatenate([steps.login, np.zeros(len(bot_sess), bool)])
    is_bot_step = sess >= S
    T = len(sess)
    first = np.r_[True, sess[1:] != sess[:-1]]
    last = np.r_[sess[1:] != sess[:-1], True]
    starts = np.flatnonzero(first)
    cs = np.cumsum(gap_us) - gap_us
    offset = cs - np.repeat(cs[starts], np.diff(np.r_[starts, T]))

    # events: the page view (or search) itself, then form, login, click and logout events inside its dwell
    logged_sess = np.zeros(S + n_bots, bool)
    logged_sess[sess[login]] = True
    human = ~is_bot_step
    parts = [
        (np.arange(T), np.where(world.page_placeholder[page] == 4, ET["search"], ET["page_view"]), 0.0),
        (np.flatnonzero(human & (world.page_form[page] == 1)), ET["form_start"], 0.3),
        (np.flatnonzero(human & (world.page_form[page] == 2)), ET["form_submit"], 0.3),
        (np.flatnonzero(login), ET["login"], 0.5),
        (
            np.flatnonzero(human & (world.page_placeholder[page] != 4) & (rng.random(T) < CLICK_SHARE)),
            ET["click"],
            0.8,
        ),
        (
            np.flatnonzero(human & last & logged_sess[sess] & (rng.random(T) < LOGOUT_SHARE)),
            ET["logout"],
            0.9,
        ),
    ]
    ev_step = np.concatenate([p[0] for p in parts])
    ev_type = np.concatenate([np.broadcast_to(np.asarray(p[1]), p[0].shape) for p in parts])
    ev_main = np.zeros(len(ev_step), bool)
    ev_main[:T] = True
    ev_frac = np.concatenate([np.full(len(p[0]), p[2]) for p in parts])
    ev_off = offset[ev_step] + (ev_frac * gap_us[ev_step]).astype(np.int64)
    order = np.lexsort((ev_off, sess[ev_step]))
    ev_step, ev_type, ev_main, ev_off = ev_step[order], ev_type[order], ev_main[order], ev_off[order]
    ev_sess = sess[ev_step]
    n_events = np.bincount(ev_sess, minlength=S + n_bots)
    duration = np.zeros(S + n_bots, np.int64)
    duration[ev_sess] = ev_off  # sorted, so the last write is the session's last event

    # when: human sessions of one person in order, an hour apart at least; bots anywhere in the window
    start = np.empty(S + n_bots, np.int64)
    start[:S] = schedule(plan.person, plan.wish_start_us, duration[:S])
    start[S:] = rng.integers(0, days * DAY_US, n_bots)
    ev_ts = t0_us + start[ev_sess] + ev_off

    # strings, per session then per step then per event
    bot_keys = 1_000_000_000 + batch * 1_000_000 + np.arange(n_bots)
    bot_vid = s.cat(
        s.digits(s.scramble(bot_keys, 10**10, 2654435761, 7), 10),
        ".",
        s.digits((t0_us // US) + start[S:] // US, 10),
    )
    cookie_row = plan.person * world.cfg.max_cookies + plan.cookie
    vid_sess = pa.concat_arrays([visitor_ids.take(pa.array(cookie_row)), bot_vid])
    person_all = np.concatenate([plan.person, np.full(n_bots, -1)])
    q_idx = world.query_start[np.maximum(intent, 0)] + (
        rng.random(T) * world.query_count[np.maximum(intent, 0)]
    ).astype(np.int64)
    query = s.take(world.queries, q_idx)
    bait_mask = (world.page_placeholder[page] == 4) & (rng.random(T) < cfg.pii_share)
    n_bait = int(bait_mask.sum())
    bait_text, bait_value = s.pii_queries(rng, n_bait)
    query = _put(query, bait_mask, bait_text)
    url_step, bait_url = _step_urls(rng, world, plan, page, sess, first, person_all, query, acct, S, n_bots)
    ev_main_first = ev_main & first[ev_step]
    ref_sess = _referrers(rng, world, plan, n_bots)
    step_pos = pa.array(ev_step)
    is_search = ev_type == ET["search"]
    dwell_ev = dwell_ms[ev_step]
    null_dwell = ~ev_main | (dwell_ev < 0) | (last[ev_step] & (rng.random(len(ev_step)) < EXIT_DWELL_NULL))
    null_dwell |= rng.random(len(ev_step)) < DWELL_NULL
    device_sess = s.take(DEVICES, np.concatenate([plan.device, np.zeros(n_bots, np.int64)]))
    cust_person = customer_ids.take(pa.array(np.maximum(person_all, 0)))

    events = pa.table(
        {
            "visitor_id": vid_sess.take(pa.array(ev_sess)),
            "ts": pa.array(ev_ts).cast(pa.timestamp("us", tz="UTC")),
            "url": url_step.take(step_pos),
            "page_title": s.take(world.page_title, page[ev_step]),
            "event_type": s.take(KNOWN_EVENT_TYPES, ev_type),
            "device": device_sess.take(pa.array(ev_sess)),
            "referrer": s.if_else(ev_main_first, ref_sess.take(pa.array(ev_sess)), s.NULL_STR),
            "search_query": s.if_else(is_search, query.take(step_pos), s.NULL_STR),
            "dwell_ms": pa.array(dwell_ev, mask=null_dwell),
            "platform": pa.array(np.full(len(ev_step), "web")),
            "customer_id": s.if_else(ev_type == ET["login"], cust_person.take(pa.array(ev_sess)), s.NULL_STR),
            "session_id": pa.nulls(len(ev_step), pa.string()),
        }
    )
    truth, conversions, recent = web_truth(
        rng,
        world,
        people,
        plan,
        n_bots,
        first_session,
        vid_sess,
        start + t0_us,
        duration,
        n_events,
        logged_sess,
        ev_sess,
        ev_ts,
        ev_type,
        page[ev_step],
        days,
        t0_us,
        customer_ids,
    )
    bait = {"search_query": bait_value.to_pylist(), "url": bait_url}
    return WebBatch(events, truth, conversions, recent, bait)


def _put(values: pa.Array, mask: np.ndarray, replacement: pa.Array) -> pa.Array:
    """values with the masked positions replaced, in order, by `replacement`."""
    if not mask.any():
        return values
    pos = np.cumsum(mask) - 1
    filled = replacement.take(pa.array(np.where(mask, pos, 0)))
    return pc.if_else(pa.array(mask), filled, values)


def schedule(person: np.ndarray, wish: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """Start times: each person's sessions in wished order, pushed later so they never come closer than
    SESSION_GAP_US after the previous one's end. One vectorised pass per session rank."""
    order = np.lexsort((wish, person))
    p, w, d = person[order], wish[order], duration[order]
    new = np.r_[True, p[1:] != p[:-1]]
    rank = np.arange(len(p)) - np.maximum.accumulate(np.where(new, np.arange(len(p)), 0))
    out = w.copy()
    for r in range(1, int(rank.max(initial=0)) + 1):
        i = np.flatnonzero(rank == r)
        out[i] = np.maximum(w[i], out[i - 1] + d[i - 1] + SESSION_GAP_US)
    start = np.empty_like(out)
    start[order] = out
    return start


def _step_urls(
    rng: np.random.Generator,
    world: World,
    plan: Plan,
    page: np.ndarray,
    sess: np.ndarray,
    first: np.ndarray,
    person: np.ndarray,
    query: pa.Array,
    acct: pa.Array,
    S: int,
    n_bots: int,
) -> tuple[pa.Array, list[str]]:
    """Full URL of every step: site, path with its placeholder filled, and on landing pages the
    campaign query string (and, now and then, a password-reset token and e-mail: PII bait)."""
    T = len(page)
    hole = world.page_placeholder[page]
    app_id = s.digits(rng.integers(10_000, 1_000_000, S + n_bots), 5).take(pa.array(sess))
    rand_id = s.digits(rng.integers(100_000, 1_000_000, T), 6)
    acct_step = acct.take(pa.array(np.maximum(person, 0))).take(pa.array(sess))
    searched = hole == 4
    q_enc = _put(pa.nulls(T, pa.string()), searched, s.urlencode(query.filter(pa.array(searched))))
    fill = s.if_else(
        hole == 1,
        app_id,
        s.if_else(hole == 2, acct_step, s.if_else(hole == 3, rand_id, s.if_else(searched, q_enc, ""))),
    )
    path = s.cat(s.take(world.page_prefix, page), fill, s.take(world.page_suffix, page))

    # landing query strings, per session (bots land bare)
    variants = REFERRER_VARIANTS
    v = np.concatenate([plan.variant, np.zeros(n_bots, np.int64)])
    product = np.concatenate([plan.product1, np.full(n_bots, NO_PRODUCT)])
    campaigns = [f"{p.slug}-q1" for p in PRODUCTS] + ["brand-always-on"]
    head = s.take([x[3] for x in variants], v)
    camp = s.if_else(np.array([x[4] for x in variants])[v], s.take(campaigns, product), "")
    tail_kind = np.array([x[6] for x in variants])[v]
    tail = s.if_else(
        tail_kind == "tok",
        s.tokens(rng, len(v), 24),
        s.if_else(tail_kind == "num", s.digits(rng.integers(1000, 99999, len(v)), 5), ""),
    )
    qs = s.cat(head, camp, s.take([x[5] for x in variants], v), tail)
    has_qs = np.array([bool(x[3]) for x in variants])[v]

    # PII bait: a password-reset link from an e-mail carries a token and the address
    landing_help = first & (world.page_group[page] == HELP_ACCESS)
    bait = landing_help & (rng.random(T) < min(1.0, 20 * world.cfg.pii_share))
    n_bait = int(bait.sum())
    emails, toks = s.fake_emails(rng, n_bait), s.tokens(rng, n_bait, 32)
    bait_qs = _put(pa.nulls(T, pa.string()), bait, s.cat("token=", toks, "&email=", s.urlencode(emails)))

    land_qs = s.if_else(first & has_qs[sess], qs.take(pa.array(sess)), s.NULL_STR)
    land_qs = pc.coalesce(bait_qs, land_qs)
    sep = s.if_else(world.page_has_query[page], "&", "?")
    tail_step = pc.coalesce(s.cat(sep, land_qs), "")
    urls = s.cat(SITE, path, tail_step)
    return urls, emails.to_pylist() + toks.to_pylist()


def _referrers(rng: np.random.Generator, world: World, plan: Plan, n_bots: int) -> pa.Array:
    """The external referrer of each session's landing event (null: direct, or stripped)."""
    variants = REFERRER_VARIANTS
    v = plan.variant
    S = len(v)
    base = s.take([x[1] for x in variants], v)
    kind = np.array([x[2] for x in variants])[v]
    qi = world.query_start[plan.intent1] + (rng.random(S) * world.query_count[plan.intent1]).astype(np.int64)
    engine_q = s.urlencode(s.take(world.queries, qi))
    tail = s.if_else(kind == "q", engine_q, s.if_else(kind == "tok", s.tokens(rng, S, 10), ""))
    return pa.concat_arrays([s.cat(base, tail), pa.nulls(n_bots, pa.string())])
