"""Toy sessions for the encoder's tests and speed benchmarks: a tiny seeded bank site, not the simulator.

`toy_sessions(n)` returns a `schema.SESSIONS` table whose sessions each follow one hidden topic (cards,
savings, loans, mortgages, help) with some noise, plus that topic per session, so a test can check that
training separates topics. `fixed_length` gives every session the same number of events (for the
embedding benchmark). What it leaves out: everything that makes the real simulator (clickintent.sim)
useful for evaluation: intents with ground truth journeys, logins, app behaviour, conversions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from clickintent.schema import SESSIONS

TOPICS = ("cards", "savings", "loans", "mortgages", "help")
_PRODUCTS = {
    "cards": ["cashback-credit-card", "travel-rewards-card", "balance-transfer-card", "student-card"],
    "savings": ["easy-access-saver", "fixed-rate-bond", "cash-isa", "kids-saver"],
    "loans": ["personal-loan", "car-finance", "debt-consolidation-loan", "home-improvement-loan"],
    "mortgages": ["first-time-buyer", "remortgage", "buy-to-let", "mortgage-calculator"],
    "help": ["lost-card", "contact-us", "update-address", "fraud-support"],
}
_QUERIES = {
    "cards": ["credit card cashback", "best travel card", "0% balance transfer"],
    "savings": ["isa rates", "savings account interest", "fixed bond"],
    "loans": ["loan calculator", "borrow 10000", "car loan rates"],
    "mortgages": ["mortgage rates", "how much can i borrow mortgage", "remortgage deal"],
    "help": ["report lost card", "phone number", "change address"],
}
_TYPES = ["page_view", "page_view", "page_view", "click", "click", "search", "form_start"]
_DEVICES = ["desktop", "mobile", "tablet"]
_REFERRERS = [None, "https://www.google.com/", "https://mail.example.com/", "https://www.facebook.com/", None]


def toy_pages(extra_pages_per_topic: int = 0) -> dict[str, list[tuple[str, str]]]:
    """(page, title) per topic; `extra` adds numbered variants so the catalogue can grow."""
    out: dict[str, list[tuple[str, str]]] = {}
    for topic in TOPICS:
        pages = [(f"bank.example/{topic}", f"{topic.title()} | Example Bank")]
        for prod in _PRODUCTS[topic]:
            name = prod.replace("-", " ")
            pages.append((f"bank.example/{topic}/{prod}", f"{name.title()} - {topic} | Example Bank"))
            pages.append((f"bank.example/{topic}/{prod}/apply", f"Apply for {name} | Example Bank"))
        for i in range(extra_pages_per_topic):
            prod = _PRODUCTS[topic][i % len(_PRODUCTS[topic])]
            pages.append(
                (f"bank.example/{topic}/{prod}/guide-{i}", f"{prod.replace('-', ' ')} guide {i} | Example Bank")
            )
        out[topic] = pages
    return out


def toy_sessions(
    n: int,
    seed: int = 0,
    *,
    mean_events: float = 8.0,
    fixed_length: int | None = None,
    noise: float = 0.2,
    extra_pages_per_topic: int = 0,
) -> tuple[pa.Table, np.ndarray]:
    """(sessions table in `schema.SESSIONS`, topic index per session)."""
    rng = np.random.default_rng(seed)
    catalogue = toy_pages(extra_pages_per_topic)
    all_pages = [p for topic in TOPICS for p in catalogue[topic]]
    t0 = datetime(2025, 1, 6, tzinfo=UTC)
    rows = []
    topics = rng.integers(len(TOPICS), size=n)
    for s in range(n):
        topic = TOPICS[topics[s]]
        length = fixed_length or max(1, int(rng.poisson(mean_events)))
        device = _DEVICES[rng.integers(3)]
        ts = t0 + timedelta(seconds=int(rng.integers(0, 7 * 86400)))
        referrer = _REFERRERS[rng.integers(len(_REFERRERS))]
        events = []
        prev_url: str | None = None
        for i in range(length):
            pool = all_pages if rng.random() < noise else catalogue[topic]
            page, title = pool[rng.integers(len(pool))]
            etype = _TYPES[rng.integers(len(_TYPES))]
            query = None
            if etype == "search":
                query = _QUERIES[topic][rng.integers(3)]
                page, title = "bank.example/search?q={text}", "Search | Example Bank"
            url = "https://" + page.replace("{text}", (query or "").replace(" ", "+"))
            dwell = int(rng.lognormal(9.5, 1.0))
            events.append(
                {
                    "ts": ts, "url": url, "page": page, "page_title": title, "event_type": etype,
                    "device": device, "referrer": referrer if i == 0 else prev_url,
                    "search_query": query, "dwell_ms": dwell,
                }
            )  # fmt: skip
            prev_url = url
            ts = ts + timedelta(milliseconds=dwell + int(rng.integers(0, 5000)))
        rows.append(
            {
                "session_id": f"s{seed}-{s:07d}", "visitor_id": f"v{rng.integers(n):07d}", "customer_id": None,
                "platform": "web", "start": events[0]["ts"], "end": events[-1]["ts"], "n_events": length,
                "events": events,
            }
        )  # fmt: skip
    return pa.Table.from_pylist(rows, schema=SESSIONS), topics
