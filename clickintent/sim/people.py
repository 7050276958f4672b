"""People of the simulated world: segments, customer profiles, cookies, app installs and standing needs.

A person is a web visitor; a share of them are customers with holdings, tenure and a private taste for
each product (which drives their app tile clicks with or without any web signal). Each person has one to
`max_cookies` browser cookies, each on one device type, and customers may have one app install. A person's
intent mix depends only on segment, customer status and the holdings in `intent_holding_keys`; taste and
the other holdings never touch it. That separation is what makes `--signal 0` an exact placebo.
Not modelled: households, churn, people who become customers during the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from clickintent.sim.products import PRODUCT_IDS

if TYPE_CHECKING:
    from clickintent.sim.world import World

SEGMENTS: tuple[str, ...] = (
    "student",
    "young_professional",
    "family",
    "mass_affluent",
    "retiree",
    "business_owner",
)
SEGMENT_SHARE = np.array([0.12, 0.22, 0.26, 0.18, 0.14, 0.08])
AGE_RANGE = np.array([[18, 24], [24, 36], [30, 52], [35, 66], [62, 86], [28, 66]])
TENURE_MEAN_MONTHS = np.array([20, 40, 80, 110, 180, 90])

# Chance a customer of each segment holds each product (columns in PRODUCT_IDS order).
_HOLD = {
    "student": dict(checking=0.9, savings=0.35, secured_card=0.2, cash_back_card=0.15),
    "young_professional": dict(
        checking=0.9,
        savings=0.5,
        rewards_card=0.3,
        cash_back_card=0.35,
        auto_loan=0.25,
        investing=0.15,
        personal_loan=0.1,
    ),
    "family": dict(
        checking=0.92,
        savings=0.55,
        cash_back_card=0.4,
        rewards_card=0.2,
        auto_loan=0.4,
        mortgage=0.45,
        heloc=0.1,
        personal_loan=0.12,
        cd=0.05,
    ),
    "mass_affluent": dict(
        checking=0.9,
        savings=0.7,
        rewards_card=0.55,
        mortgage=0.45,
        investing=0.45,
        cd=0.25,
        heloc=0.15,
        auto_loan=0.2,
    ),
    "retiree": dict(checking=0.95, savings=0.75, cd=0.4, mortgage=0.15, investing=0.3, cash_back_card=0.3, heloc=0.08),
    "business_owner": dict(
        checking=0.85, savings=0.5, small_business=0.7, rewards_card=0.35, mortgage=0.3, auto_loan=0.2
    ),
}
HOLD_P = np.array([[_HOLD[s].get(p, 0.02) for p in PRODUCT_IDS] for s in SEGMENTS])
# A product's appeal on the app home page: segments like what their peers hold; holding it already lowers it.
TILE_BASE = 1.2 * np.log(HOLD_P + 0.05)
HELD_PENALTY = 1.0
TASTE_SD = 0.8


@dataclass(frozen=True)
class People:
    """One batch of people; row i of every array is person i (person_id = first_id + i)."""

    first_id: int
    segment: np.ndarray  # (n,) index into SEGMENTS
    is_customer: np.ndarray  # (n,) bool
    holdings: np.ndarray  # (n, P) bool, all False for non-customers
    age: np.ndarray  # (n,)
    tenure_months: np.ndarray  # (n,), 0 for non-customers
    taste: np.ndarray  # (n, P) private product taste (tiles)
    web_rate: np.ndarray  # (n,) web sessions per day
    n_cookies: np.ndarray  # (n,)
    cookie_device: np.ndarray  # (n, max_cookies) device index, valid for j < n_cookies
    app_user: np.ndarray  # (n,) bool
    app_rate: np.ndarray  # (n,) app opens per day (0 for non-users)
    intent_p: np.ndarray  # (n, K) probability of each intent for a fresh session
    need: np.ndarray  # (n,) the person's standing need (an intent index)

    @property
    def n(self) -> int:
        return len(self.segment)


def intent_probabilities(
    world: World, segment: np.ndarray, is_customer: np.ndarray, holdings: np.ndarray
) -> np.ndarray:
    """(n, K) intent mix per person from segment, customer status and the intent-relevant holdings."""
    w = world.intent_share[None, :] * world.segment_mult.T[segment]
    w = w * np.where(is_customer[:, None], world.customer_mult[None, :], 1.0)
    # product over held products of their multipliers: exp(holdings @ log(mult))
    w = w * np.exp(holdings.astype(float) @ np.log(world.holding_mult).T)
    return w / w.sum(axis=1, keepdims=True)


def make_people(rng: np.random.Generator, world: World, n: int, first_id: int) -> People:
    """Draw `n` people from one generator."""
    cfg = world.cfg
    P = len(PRODUCT_IDS)
    segment = rng.choice(len(SEGMENTS), size=n, p=SEGMENT_SHARE)
    is_customer = rng.random(n) < cfg.customer_share
    holdings = (rng.random((n, P)) < HOLD_P[segment]) & is_customer[:, None]
    lo, hi = AGE_RANGE[segment, 0], AGE_RANGE[segment, 1]
    age = lo + (rng.random(n) * (hi - lo)).astype(np.int64)
    tenure = np.minimum(rng.exponential(TENURE_MEAN_MONTHS[segment]), (age - 17) * 12).astype(np.int64)
    tenure = np.where(is_customer, np.maximum(tenure, 1), 0)
    taste = rng.normal(0.0, TASTE_SD, size=(n, P))
    web_rate = rng.gamma(1.5, cfg.web_sessions_per_day / 1.5, size=n)
    n_cookies = np.minimum(1 + rng.geometric(0.55, size=n) - 1, cfg.max_cookies)
    device_mix = world.device_w.mean(axis=0)
    cookie_device = rng.choice(len(device_mix), size=(n, cfg.max_cookies), p=device_mix / device_mix.sum())
    app_user = is_customer & (rng.random(n) < cfg.app_user_share)
    app_rate = np.where(app_user, rng.gamma(1.2, cfg.app_opens_per_day / 1.2, size=n), 0.0)
    intent_p = intent_probabilities(world, segment, is_customer, holdings)
    need = _sample_intent(rng, intent_p)
    return People(
        first_id,
        segment,
        is_customer,
        holdings,
        age,
        tenure,
        taste,
        web_rate,
        n_cookies,
        cookie_device,
        app_user,
        app_rate,
        intent_p,
        need,
    )


def _sample_intent(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    cum = np.cumsum(p, axis=1)
    cum[:, -1] = 1.0
    return np.minimum((rng.random(len(p))[:, None] >= cum).sum(axis=1), p.shape[1] - 1)


def sample_intents(rng: np.random.Generator, people: People, person: np.ndarray) -> np.ndarray:
    """A fresh intent for each session (row of `person`) from its person's mix."""
    return _sample_intent(rng, people.intent_p[person])


def tile_utility(people: People) -> np.ndarray:
    """(n, P) profile-only appeal of each product tile: segment, holdings and private taste."""
    return TILE_BASE[people.segment] - HELD_PENALTY * people.holdings + people.taste
