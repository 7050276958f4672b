"""Applications: after each human web visit, does the visitor apply for a product, which one, and where?

One discrete choice per visit (a multinomial logit) among "no application" and the 15 products:

    u(none) = 0
    u(p)    = a + appeal(profile, p) + signal * ln(apply_odds_ratio) * affinity(intent, p)

`appeal` is the app tile model's profile-only utility (segment, holdings, private taste: people.py), and
`a` is set so that with no pull about `apply_base` of all visits lead to an application. So with
`--signal 0` what a visitor applies for does not depend on what they browsed (the conversion placebo), and
with `--signal s` researching a product multiplies the odds of applying for it by `apply_odds_ratio ** s`.
The channel is drawn apart from the product: the app (app users only, `app_channel`), a branch or the phone
(`offline_channel`), else the web, where the visit goes on into the four application pages and submits
(web.py appends them). App and offline applications follow within `LATER_US` of the visit.

Both the full and the profile-only probabilities of each visit's choice are written to the truth
(`p_apply`, `p_apply_profile`, with `p_app_channel`), so the conversion task's ceiling is exact for the
application a visit leads to. The draws come from their own random stream, so the visits themselves (the
pages before any application) are the same at every signal.
Not modelled: abandoned applications, approval, several applications from one visit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clickintent.sim.journeys import DAY_US, US, Plan
from clickintent.sim.people import HELD_PENALTY, HOLD_P, SEGMENT_SHARE, TASTE_SD, TILE_BASE, People, tile_utility
from clickintent.sim.world import NO_PRODUCT, World

WEB, APP, OFFLINE = 0, 1, 2
CHANNELS = ("web", "app", "offline")
LATER_US = (3_600 * US, 3 * DAY_US)  # app and offline applications: between an hour and three days later


@dataclass(frozen=True)
class Applications:
    """Per human web session of a batch (rows of the Plan): the choice and the probabilities behind it."""

    product: np.ndarray  # product index, NO_PRODUCT for no application
    channel: np.ndarray  # WEB, APP or OFFLINE (meaningful where a product is chosen)
    later_us: np.ndarray  # delay after the visit of an app or offline application
    p_full: np.ndarray  # (S, 1+P) float32: P(none), P(product p) given everything the world knows
    p_profile: np.ndarray  # (S, 1+P) float32: the same without the visit (signal term dropped)
    p_app_channel: np.ndarray  # (S,) float32: chance an application of this person is made in the app

    @property
    def on_web(self) -> np.ndarray:
        """Sessions that go on into the application pages."""
        result: np.ndarray = (self.product < NO_PRODUCT) & (self.channel == WEB)
        return result


def base_constant(world: World) -> float:
    """`a` such that, with no pull, about `apply_base` of visits lead to an application (a small-rate
    approximation over the segment mix, holdings and taste, not fitted to any drawn world)."""
    cfg = world.cfg
    held = cfg.customer_share * HOLD_P
    mean_exp = np.exp(TILE_BASE) * (1 - held + held * np.exp(-HELD_PENALTY)) * np.exp(TASTE_SD**2 / 2)
    total = float((SEGMENT_SHARE[:, None] * mean_exp).sum())
    odds = cfg.apply_base / max(1.0 - cfg.apply_base, 1e-12)
    return float(np.log(max(odds, 1e-300)) - np.log(total))


def choice_probabilities(utility: np.ndarray) -> np.ndarray:
    """(S, 1+P) multinomial logit probabilities of [none, products] for product utilities (S, P)."""
    z = np.concatenate([np.zeros((len(utility), 1)), utility], axis=1)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


def decide(rng: np.random.Generator, world: World, people: People, plan: Plan, signal: float) -> Applications:
    """Draw every human visit's application (most: none) from its own generator `rng`."""
    cfg = world.cfg
    S = len(plan.person)
    profile = base_constant(world) + tile_utility(people)[plan.person]  # (S, P)
    pull = signal * np.log(cfg.apply_odds_ratio) * world.affinity[plan.intent1]
    p_profile = choice_probabilities(profile)
    p_full = choice_probabilities(profile + pull)
    cum = np.cumsum(p_full.astype(np.float64), axis=1)
    choice = np.minimum((rng.random(S)[:, None] >= cum).sum(axis=1), cum.shape[1] - 1)
    product = np.where(choice == 0, NO_PRODUCT, choice - 1)
    p_app = np.where(people.app_user[plan.person], cfg.app_channel, 0.0)
    u = rng.random(S)
    channel = np.where(u < p_app, APP, np.where(u < p_app + cfg.offline_channel, OFFLINE, WEB))
    later = rng.integers(LATER_US[0], LATER_US[1], S)
    return Applications(product, channel, later, p_full, p_profile, p_app.astype(np.float32))
