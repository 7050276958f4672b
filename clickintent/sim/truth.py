"""The truth the simulator keeps apart from the events: schemas of `DIR/truth/*.parquet` and their builders.

Session truth is keyed so it joins to sessionized output: (visitor_id, platform, start, end) are the exact
first and last event timestamps of the session. A visit's application (applications.py) is a web
conversion when it is submitted on the site's application pages, else an app or offline (branch, phone)
one some hours later; app conversions also follow a tile click (app.py). Beside the outcomes the truth
keeps the exact probabilities the world drew them from (`p_apply*`, `p_tiles*`): the tasks' ceilings.
Approval, funding and revenue are not modelled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from clickintent.schema import KNOWN_EVENT_TYPES, TS
from clickintent.sim import strings as s
from clickintent.sim.applications import APP, CHANNELS, WEB, Applications
from clickintent.sim.people import SEGMENTS, People
from clickintent.sim.products import PRODUCT_IDS
from clickintent.sim.world import APPLY, NO_PRODUCT, World

if TYPE_CHECKING:
    from clickintent.sim.journeys import Plan
    from clickintent.sim.web import Timeline

US = 1_000_000
DAY_US = 86_400 * US

SESSIONS = pa.schema(
    [
        pa.field("sim_session_id", pa.string(), nullable=False),
        pa.field("visitor_id", pa.string(), nullable=False),
        pa.field("platform", pa.string(), nullable=False),
        pa.field("start", TS, nullable=False),  # ts of the session's first event
        pa.field("end", TS, nullable=False),  # ts of its last event
        pa.field("n_events", pa.int32(), nullable=False),
        pa.field("person_id", pa.int64()),  # null for bots
        pa.field("customer_id", pa.string()),  # the person's customer id, logged in or not (null: not a customer)
        pa.field("logged_in", pa.bool_(), nullable=False),  # a login event is in the session (always for app)
        pa.field("intent", pa.string()),  # primary latent intent (null for bots and app sessions)
        pa.field("intents", pa.list_(pa.string()), nullable=False),  # all intents in order (two when mixed)
        pa.field("is_bot", pa.bool_(), nullable=False),
        pa.field("is_mixed", pa.bool_(), nullable=False),
        pa.field("product", pa.string()),  # the product the primary intent was about, if any
        # The application the visit leads to (any channel, within three days), exactly as the world draws it:
        # P(none), then P(product) in PRODUCT_IDS order; with the visit and without it (the profile alone).
        # Null for bots and app sessions. docs/EVALUATION.md reads the conversion ceiling from these.
        pa.field("p_apply", pa.list_(pa.float32())),
        pa.field("p_apply_profile", pa.list_(pa.float32())),
        pa.field("p_app_channel", pa.float32()),  # chance such an application is made in the app
    ]
)

CONVERSIONS = pa.schema(
    [
        pa.field("person_id", pa.int64(), nullable=False),
        pa.field("customer_id", pa.string()),  # null for a prospect who is not (yet) a customer
        pa.field("visitor_id", pa.string(), nullable=False),  # cookie (web, offline) or app install (app)
        pa.field("product", pa.string(), nullable=False),  # one of PRODUCT_IDS
        pa.field("ts", TS, nullable=False),
        pa.field("channel", pa.string(), nullable=False),  # 'web' | 'offline' | 'app'
        pa.field("web_session_id", pa.string()),  # the web session that drove it (web, offline)
        pa.field("app_view_id", pa.string()),  # the app home view whose tile led to it (app)
    ]
)

APP_HOME = pa.schema(
    [
        pa.field("view_id", pa.string(), nullable=False),
        pa.field("sim_session_id", pa.string(), nullable=False),  # the app session it opened
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("visitor_id", pa.string(), nullable=False),  # app install id
        pa.field("ts", TS, nullable=False),  # the app_open event
        pa.field("tiles_shown", pa.list_(pa.string()), nullable=False),  # 8-12 products, in screen order
        pa.field("tile_clicked", pa.string()),  # one of tiles_shown, or null
        pa.field("click_ts", TS),  # the tile_click event
        pa.field("recent_intent", pa.string()),  # primary intent of the person's last web session in lookback
        pa.field("recent_session_id", pa.string()),  # that web session
        # P(tile | a tile is clicked), aligned with tiles_shown, as the click model computes it: with the recent
        # web intent's pull and without it (the profile alone). The tile task's ceiling (docs/EVALUATION.md).
        pa.field("p_tiles", pa.list_(pa.float32()), nullable=False),
        pa.field("p_tiles_profile", pa.list_(pa.float32()), nullable=False),
    ]
)


def session_ids(first: int, n: int) -> pa.Array:
    return s.cat("S", s.digits(np.arange(first, first + n), 9))


def _list_of(values: pa.Array, lengths: np.ndarray) -> pa.Array:
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def web_truth(world: World, people: People, plan: Plan, apps: Applications, tl: Timeline, first_session: int,
              visitor: pa.Array, ids: dict[str, pa.Array],
              ev_page: np.ndarray) -> tuple[pa.Table, pa.Table, dict[str, np.ndarray]]:  # fmt: skip
    """Session truth, conversions and the recent-intent index for the web sessions of one batch.
    `visitor` is the visitor id of each session, `ev_page` the page of each event of `tl`."""
    n_bots, start_us, duration, n_events = tl.n_bots, tl.start_us, tl.duration_us, tl.n_events
    ev_sess, ev_ts, ev_type = tl.ev_sess, tl.ev_ts, tl.ev_type
    S = len(plan.person)
    n = S + n_bots
    names = [i.name for i in world.intents]
    person = np.concatenate([plan.person, np.full(n_bots, 0)])
    is_bot = np.r_[np.zeros(S, bool), np.ones(n_bots, bool)]
    is_cust = people.is_customer[person] & ~is_bot
    mixed = np.r_[plan.intent2 >= 0, np.zeros(n_bots, bool)]
    intent1 = s.if_else(is_bot, s.NULL_STR, s.take(names, np.r_[plan.intent1, np.zeros(n_bots, np.int64)]))
    n_int = np.where(is_bot, 0, 1 + mixed)
    pairs = np.stack(
        [np.r_[plan.intent1, np.zeros(n_bots, np.int64)], np.r_[plan.intent2, np.zeros(n_bots, np.int64)]], 1
    )
    flat = pairs[np.arange(2)[None, :] < n_int[:, None]]
    product1 = np.r_[plan.product1, np.full(n_bots, NO_PRODUCT)]
    sid = session_ids(first_session, n)
    cust = ids["customer"].take(pa.array(person))
    sessions = pa.table(
        {
            "sim_session_id": sid,
            "visitor_id": visitor,
            "platform": pa.repeat("web", n),
            "start": pa.array(start_us).cast(TS),
            "end": pa.array(start_us + duration).cast(TS),
            "n_events": pa.array(n_events.astype(np.int32)),
            "person_id": pa.array(people.first_id + person, mask=is_bot),
            "customer_id": s.if_else(is_cust, cust, s.NULL_STR),
            "logged_in": pa.array(tl.logged_in),
            "intent": intent1,
            "intents": _list_of(s.take(names, flat), n_int),
            "is_bot": pa.array(is_bot),
            "is_mixed": pa.array(mixed),
            "product": s.if_else(product1 < NO_PRODUCT, s.take([*PRODUCT_IDS, ""], product1), s.NULL_STR),
            "p_apply": _probabilities(apps.p_full, n_bots),
            "p_apply_profile": _probabilities(apps.p_profile, n_bots),
            "p_app_channel": pa.array(np.r_[apps.p_app_channel, np.zeros(n_bots, np.float32)], mask=is_bot),
        },
        schema=SESSIONS,
    )

    # web: the submit on the last application page; app and offline: some time after the visit
    submit = (ev_type == KNOWN_EVENT_TYPES.index("form_submit")) & (world.page_group[ev_page] == APPLY[-1])
    web_sess = ev_sess[submit]
    later = np.flatnonzero((apps.product < NO_PRODUCT) & (apps.channel != WEB))
    later_ts = start_us[later] + duration[later] + apps.later_us[later]
    conv_sess = np.r_[web_sess, later]
    channel = np.r_[np.full(len(web_sess), WEB), apps.channel[later]]
    app_vid = ids["app"].take(pa.array(person[conv_sess]))
    conversions = pa.table(
        {
            "person_id": pa.array(people.first_id + person[conv_sess]),
            "customer_id": s.if_else(is_cust[conv_sess], cust.take(pa.array(conv_sess)), s.NULL_STR),
            "visitor_id": s.if_else(channel == APP, app_vid, visitor.take(pa.array(conv_sess))),
            "product": s.take(PRODUCT_IDS, np.r_[world.page_product[ev_page[submit]], apps.product[later]]),
            "ts": pa.array(np.r_[ev_ts[submit], later_ts]).cast(TS),
            "channel": s.take(CHANNELS, channel),
            "web_session_id": sid.take(pa.array(conv_sess)),
            "app_view_id": pa.nulls(len(conv_sess), pa.string()),
        },
        schema=CONVERSIONS,
    )
    recent = {
        "person": plan.person,
        "end_us": start_us[:S] + duration[:S],
        "intent": plan.intent1,
        "session": np.arange(first_session, first_session + S),
    }
    return sessions, conversions, recent


def _probabilities(p: np.ndarray, n_null: int) -> pa.Array:
    """Rows of `p` as list<float32>, then `n_null` nulls."""
    k = p.shape[1]
    values = pa.array(p.ravel(), pa.float32())
    offsets = pa.array(np.r_[np.arange(len(p) + 1) * k, np.full(n_null, len(p) * k)].astype(np.int32))
    mask = pa.array(np.r_[np.zeros(len(p), bool), np.ones(n_null, bool)])
    return pa.ListArray.from_arrays(offsets, values, mask=mask)


def customers_table(
    people: People, customer_ids: pa.Array, app_ids: pa.Array, past_opens: np.ndarray, past_clicks: np.ndarray
) -> pa.Table:
    """The profile a bank already has for each customer: the production-baseline features."""
    rows = np.flatnonzero(people.is_customer)
    idx = pa.array(rows)
    held = people.holdings[rows]
    cols: dict[str, pa.Array] = {
        "customer_id": customer_ids.take(idx),
        "person_id": pa.array(people.first_id + rows),
        "segment": s.take(SEGMENTS, people.segment[rows]),
        "age": pa.array(people.age[rows].astype(np.int32)),
        "tenure_months": pa.array(people.tenure_months[rows].astype(np.int32)),
        "holdings": _list_of(s.take(PRODUCT_IDS, np.nonzero(held)[1]), held.sum(1)),
        "app_user": pa.array(people.app_user[rows]),
        "app_visitor_id": s.if_else(people.app_user[rows], app_ids.take(idx), s.NULL_STR),
        "past_app_opens_90d": pa.array(past_opens[rows].astype(np.int32)),
    }
    for j, p in enumerate(PRODUCT_IDS):
        cols[f"past_clicks_{p}"] = pa.array(past_clicks[rows, j].astype(np.int32))
    return pa.table(cols)
