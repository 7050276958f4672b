"""Compile the catalogue, the intents and a config into the arrays generation samples from.

`build_world(cfg)` turns each `IntentSpec` into a Markov chain over page groups (plus an END state), the
page tables into per-(group, product) page choices, and the device/referrer/product profiles into
cumulative distributions, all as numpy arrays so generation can sample whole batches at once. It holds
no randomness: everything random happens in the generators, from a seeded numpy Generator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from clickintent.sim.catalogue import APPLY_STEPS, GROUPS, KIND_DWELL, PLACEHOLDERS, Page, default_pages
from clickintent.sim.config import SimConfig, check_pages
from clickintent.sim.intents import DEVICES, INTENTS, REFERRERS, IntentSpec
from clickintent.sim.people import SEGMENTS
from clickintent.sim.products import PRODUCT_IDS, PRODUCT_INDEX, PRODUCTS

G = len(GROUPS)
END = G  # the absorbing state after the last page
P = len(PRODUCT_IDS)
NO_PRODUCT = P
GROUP_INDEX = {g: i for i, g in enumerate(GROUPS)}
LOGIN, ACCOUNTS, HELP_ACCESS, SEARCH = (GROUP_INDEX[g] for g in ("login", "accounts", "help_access", "search"))
APPLY = tuple(GROUP_INDEX[f"apply_{k}"] for k in range(1, APPLY_STEPS + 1))
FORM_CODES = {None: 0, "start": 1, "submit": 2}
# Placeholder codes: 0 none, then PLACEHOLDERS in order (1 appId, 2 acct, 3 id, 4 q).
NOISE_GROUPS = ("home", "legal", "locations", "about", "help_general", "help_hub")
# Groups a journey never wanders into as noise or as a bot (they need a login or a running application).
PRIVATE_GROUPS = ("accounts", "app_status", *(f"apply_{k}" for k in range(1, APPLY_STEPS + 1)))


def _cum(weights: np.ndarray) -> np.ndarray:
    """Row-wise cumulative distribution whose last entry is exactly 1 (rows of zeros stay zeros)."""
    total = weights.sum(axis=-1, keepdims=True)
    cum = np.cumsum(weights / np.where(total > 0, total, 1.0), axis=-1)
    cum[..., -1] = np.where(total[..., 0] > 0, 1.0, 0.0)
    return cum


def _vec(mapping: Mapping[str, float], names: tuple[str, ...], what: str) -> np.ndarray:
    out = np.zeros(len(names))
    index = {n: i for i, n in enumerate(names)}
    for k, v in mapping.items():
        if k not in index:
            raise ValueError(f"{what}: unknown name {k!r}")
        out[index[k]] = v
    return out


def _transitions(spec: IntentSpec) -> np.ndarray:
    """(G+1, G+1) transition probabilities of one intent's journey (rows sum to 1, END absorbing)."""
    w = _vec(spec.groups, GROUPS, f"{spec.name}.groups")
    w[SEARCH] *= spec.search
    w = w / w.sum()
    t = np.zeros((G + 1, G + 1))
    t[END, END] = 1.0
    own = _vec(spec.groups, GROUPS, spec.name) > 0
    for s in range(G):
        if s in APPLY:  # never browsed to: application pages follow a visit (applications.py)
            t[s, END] = 1.0
            continue
        t[s, END] = spec.stop
        rest = 1.0 - spec.stop
        stay = spec.stay if own[s] else 0.0
        t[s, s] += rest * stay
        t[s, :G] += rest * (1 - stay) * w
    return t


@dataclass(frozen=True)
class World:
    """Everything generation samples from, as arrays. Built once per run by `build_world`."""

    cfg: SimConfig
    intents: tuple[IntentSpec, ...]
    pages: tuple[Page, ...]
    # pages
    page_group: np.ndarray  # (n_pages,) group index
    page_dwell: np.ndarray  # (n_pages,) dwell factor of the page's kind
    page_product: np.ndarray  # (n_pages,) product index, P for none
    page_form: np.ndarray  # (n_pages,) FORM_CODES
    page_placeholder: np.ndarray  # (n_pages,) 0 none, 1 appId, 2 acct, 3 id, 4 q
    page_has_query: np.ndarray  # (n_pages,) the path already holds '?'
    page_prefix: list[str]  # path before the placeholder
    page_suffix: list[str]  # path after the placeholder
    page_title: list[str]
    pick_cum: np.ndarray  # (G, P+1, M) cumulative page choice in a group, given the session's product
    pick_page: np.ndarray  # (G, M) page index of each choice
    noise_pages: np.ndarray  # page indices noise and bots draw from
    bot_pages: np.ndarray
    # intents
    intent_share: np.ndarray  # (K,) base share after the config's intent_mix
    segment_mult: np.ndarray  # (K, S)
    holding_mult: np.ndarray  # (K, P) multiplier when held (1 where it does not matter)
    customer_mult: np.ndarray  # (K,)
    trans_cum: np.ndarray  # (K, G+1, G+1)
    entry_cum: np.ndarray  # (K, G)
    product_cum: np.ndarray  # (K, P+1) product of a session, last column "none"
    affinity: np.ndarray  # (K, P) 0..1 pull of each product for an intent (app tiles, applications)
    half_life_days: np.ndarray  # (P,) how fast a visit's pull on each product's tile fades
    device_cum: np.ndarray  # (K, D)
    device_w: np.ndarray  # (K, D) device weights (cookie choice)
    referrer_cum: np.ndarray  # (K, R)
    dwell_s: np.ndarray  # (K,)
    queries: list[str]  # every intent's queries, flattened
    query_start: np.ndarray  # (K,) offset into queries
    query_count: np.ndarray  # (K,)


def _split_path(path: str) -> tuple[int, str, str]:
    for code, hole in enumerate(PLACEHOLDERS, start=1):
        if hole in path:
            before, after = path.split(hole, 1)
            return code, before, after
    return 0, path, ""


def build_world(cfg: SimConfig | None = None) -> World:
    """Compile the default catalogue and intents, changed by `cfg`, into a World."""
    cfg = cfg or SimConfig()
    pages = check_pages(cfg, default_pages())
    intents = INTENTS
    K = len(intents)

    page_group = np.array([GROUP_INDEX[p.group] for p in pages])
    page_product = np.array([NO_PRODUCT if p.product is None else PRODUCT_INDEX[p.product] for p in pages])
    splits = [_split_path(p.path) for p in pages]
    weight = np.array([p.weight for p in pages])

    members = [np.flatnonzero(page_group == g) for g in range(G)]
    M = max(len(m) for m in members)
    pick_page = np.zeros((G, M), dtype=np.int64)
    pick_w = np.zeros((G, P + 1, M))
    for g, idx in enumerate(members):
        pick_page[g, : len(idx)] = idx
        pick_page[g, len(idx) :] = idx[0] if len(idx) else 0
        for prod in range(P + 1):
            match = page_product[idx] == prod
            # an application page is the one of the product applied for; elsewhere the session's
            # product makes its pages four times as likely
            factor = np.where(match, 1.0, 0.0 if match.any() else 1.0) if g in APPLY else np.where(match, 4.0, 1.0)
            pick_w[g, prod, : len(idx)] = weight[idx] * factor
    private = {GROUP_INDEX[g] for g in PRIVATE_GROUPS}
    noise_groups = {GROUP_INDEX[g] for g in NOISE_GROUPS}
    noise_pages = np.array([i for i, p in enumerate(pages) if GROUP_INDEX[p.group] in noise_groups])
    bot_pages = np.array(
        [i for i, p in enumerate(pages) if GROUP_INDEX[p.group] not in private and "{q}" not in p.path]
    )

    share = np.array([i.share for i in intents]) * _vec_default(cfg.intent_mix, tuple(i.name for i in intents))
    if share.sum() <= 0:
        raise ValueError("intent_mix leaves no intent with a positive share")
    device_mult = _vec_default(cfg.device_mix, DEVICES)
    referrer_mult = _vec_default(cfg.referrer_mix, REFERRERS)
    device_w = np.stack([_vec(i.device, DEVICES, i.name) for i in intents]) * device_mult
    referrer_w = np.stack([_vec(i.referrer, REFERRERS, i.name) for i in intents]) * referrer_mult
    if (device_w.sum(1) <= 0).any() or (referrer_w.sum(1) <= 0).any():
        raise ValueError("device_mix / referrer_mix leave an intent with no device or referrer")
    products = np.zeros((K, P + 1))
    for k, spec in enumerate(intents):
        products[k, :P] = _vec(spec.products, PRODUCT_IDS, spec.name)
        if not spec.products:
            products[k, P] = 1.0
    affinity = products[:, :P] / np.maximum(products[:, :P].max(axis=1, keepdims=True), 1e-12)
    queries = [q for spec in intents for q in spec.queries]
    counts = np.array([len(spec.queries) for spec in intents])

    return World(
        cfg=cfg,
        intents=intents,
        pages=pages,
        page_group=page_group,
        page_dwell=np.array([KIND_DWELL[p.kind] for p in pages]),
        page_product=page_product,
        page_form=np.array([FORM_CODES[p.form] for p in pages]),
        page_placeholder=np.array([s[0] for s in splits]),
        page_has_query=np.array(["?" in p.path for p in pages]),
        page_prefix=[s[1] for s in splits],
        page_suffix=[s[2] for s in splits],
        page_title=[p.title for p in pages],
        pick_cum=_cum(pick_w),
        pick_page=pick_page,
        noise_pages=noise_pages,
        bot_pages=bot_pages,
        intent_share=share / share.sum(),
        segment_mult=np.stack([_vec_default(i.segments, SEGMENTS) for i in intents]),
        holding_mult=np.stack([_vec_default(i.holdings, PRODUCT_IDS) for i in intents]),
        customer_mult=np.array([i.customer for i in intents]),
        trans_cum=_cum(np.stack([_transitions(i) for i in intents])),
        entry_cum=_cum(np.stack([_vec(i.entry, GROUPS, i.name) for i in intents])),
        product_cum=_cum(products),
        affinity=affinity,
        half_life_days=np.array([p.half_life_days for p in PRODUCTS]),
        device_cum=_cum(device_w),
        device_w=device_w / device_w.sum(1, keepdims=True),
        referrer_cum=_cum(referrer_w),
        dwell_s=np.array([i.dwell_s for i in intents]),
        queries=queries,
        query_start=np.concatenate([[0], np.cumsum(counts)[:-1]]),
        query_count=counts,
    )


def _vec_default(mapping: Mapping[str, float], names: tuple[str, ...]) -> np.ndarray:
    """Multipliers by name, 1 where a name is not given."""
    out = np.ones(len(names))
    index = {n: i for i, n in enumerate(names)}
    for k, v in mapping.items():
        out[index[k]] = v
    return out


def sample_rows(rng: np.random.Generator, cum: np.ndarray) -> np.ndarray:
    """One draw per row of a (n, k) cumulative table: the index of the first entry above a uniform."""
    u: np.ndarray = rng.random((cum.shape[0],))
    return np.minimum((u[:, None] >= cum).sum(axis=1), cum.shape[1] - 1)


def run_first(x: np.ndarray) -> np.ndarray:
    """True where a run of equal values in `x` begins."""
    return np.r_[True, x[1:] != x[:-1]][: len(x)]


def run_last(x: np.ndarray) -> np.ndarray:
    """True where a run of equal values in `x` ends."""
    return np.r_[x[1:] != x[:-1], True][: len(x)]
