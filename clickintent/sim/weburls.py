"""The strings of web events: full URLs with filled placeholders and landing query strings, and referrers.

Landing events carry the mess of real campaigns (utm parameters, gclid/msclkid/fbclid tokens, affiliate
ids) chosen by the session's referrer variant; search-engine referrers carry the visitor's query text.
PII bait rides along: a password-reset link arriving from an e-mail carries a token and the address.
Everything is built with Arrow element-wise operations (see strings.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clickintent.sim import strings as s
from clickintent.sim.catalogue import SITE
from clickintent.sim.products import PRODUCTS
from clickintent.sim.world import HELP_ACCESS, NO_PRODUCT, World

if TYPE_CHECKING:
    from clickintent.sim.journeys import Plan

# Referrer variants: (type, referrer, referrer tail, landing query head, campaign?, query mid, landing tail).
# Tails: "" none, "q" the session's search-engine text, "tok" a random token, "num" a number.
_UTM = "utm_source={}&utm_medium={}"
# fmt: off
REFERRER_VARIANTS: tuple[tuple[str, str | None, str, str, bool, str, str], ...] = (
    ("direct", None, "", "", False, "", ""),
    ("organic", "https://www.google.com/search?q=", "q", "", False, "", ""),
    ("organic", "https://www.google.com/", "", "", False, "", ""),
    ("organic", "https://www.bing.com/search?q=", "q", "", False, "", ""),
    ("organic", "https://duckduckgo.com/?q=", "q", "", False, "", ""),
    ("paid", "https://www.google.com/", "", _UTM.format("google", "cpc") + "&utm_campaign=", True, "&gclid=", "tok"),
    ("paid", "https://www.bing.com/", "", _UTM.format("bing", "cpc") + "&utm_campaign=", True, "&msclkid=", "tok"),
    ("email", None, "", _UTM.format("newsletter", "email") + "&utm_campaign=", True, "&mc_eid=", "tok"),
    ("email", "https://mail.google.com/", "", _UTM.format("newsletter", "email") + "&utm_campaign=", True,
     "&mc_eid=", "tok"),
    ("social", "https://www.facebook.com/", "", _UTM.format("facebook", "social") + "&fbclid=", False, "", "tok"),
    ("social", "https://t.co/", "tok", _UTM.format("twitter", "social"), False, "", ""),
    ("social", "https://www.reddit.com/r/personalfinance/", "", "", False, "", ""),
    ("affiliate", "https://www.nerdwallet.com/", "", _UTM.format("nerdwallet", "affiliate") + "&aff_id=", False,
     "", "num"),
    ("affiliate", "https://www.bankrate.com/", "", _UTM.format("bankrate", "affiliate") + "&aff_id=", False,
     "", "num"),
    ("affiliate", "https://www.creditkarma.com/", "", _UTM.format("creditkarma", "affiliate") + "&aff_id=", False,
     "", "num"),
)
# fmt: on


def put(values: pa.Array, mask: np.ndarray, replacement: pa.Array) -> pa.Array:
    """values with the masked positions replaced, in order, by `replacement`."""
    if not mask.any():
        return values
    pos = np.cumsum(mask) - 1
    filled = replacement.take(pa.array(np.where(mask, pos, 0)))
    return pc.if_else(pa.array(mask), filled, values)


def step_urls(
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
    q_enc = put(pa.nulls(T, pa.string()), searched, s.urlencode(query.filter(pa.array(searched))))
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
    bait_qs = put(pa.nulls(T, pa.string()), bait, s.cat("token=", toks, "&email=", s.urlencode(emails)))

    land_qs = s.if_else(first & has_qs[sess], qs.take(pa.array(sess)), s.NULL_STR)
    land_qs = pc.coalesce(bait_qs, land_qs)
    sep = s.if_else(world.page_has_query[page], "&", "?")
    tail_step = pc.coalesce(s.cat(sep, land_qs), "")
    urls = s.cat(SITE, path, tail_step)
    return urls, emails.to_pylist() + toks.to_pylist()


def referrers(rng: np.random.Generator, world: World, plan: Plan, n_bots: int) -> pa.Array:
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
