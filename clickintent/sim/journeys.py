"""Journeys: who browses when, from which cookie and referrer, and which pages each intent's chain visits.

`plan_sessions` draws every human web session of a batch of people (intent or two, product, cookie and
device, referrer, preferred start); `run_journeys` walks the intents' Markov chains over page groups for
all sessions at once, one loop iteration per step; `pick_pages` turns groups into pages. Sign-in is part
of the walk: account pages send visitors who have not signed in to the login page. Nothing here makes
strings or timestamps (see web.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clickintent.sim.intents import REFERRERS
from clickintent.sim.people import People, sample_intents
from clickintent.sim.weburls import REFERRER_VARIANTS
from clickintent.sim.world import ACCOUNTS, APPLY, END, HELP_ACCESS, LOGIN, NO_PRODUCT, World, sample_rows

US = 1_000_000  # microseconds per second
DAY_US = 86_400 * US
MAX_STEPS = 40  # pages per human session
# When people browse: weight of each UTC hour of the day.
HOURS = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 4, 4.5, 5, 5.5, 5, 4.5, 4.5, 4.5, 5, 5.5, 6, 6, 5, 3.5, 2])


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
    """Every human web session of a batch: at least one per person, more at the person's own rate.
    Most follow the person's standing need; some switch to a second intent midway (mixed)."""
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
    """A referrer variant of each session's referrer type, uniformly among that type's variants."""
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
