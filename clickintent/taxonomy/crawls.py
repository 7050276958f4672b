"""Machine-paced visits (crawlers, uptime monitors, scrapers), which a taxonomy build leaves out.

A visit that arrives on at least `CRAWL_PAGES` pages with a median time between arrivals under
`CRAWL_SECONDS` reads pages faster than a person can. Its pages are whatever the crawler's list holds, so
a cluster of such visits becomes a label about nothing: in the demo, "Careers > Intro APR Card", 19 of
whose 20 example visits were the simulator's bots (docs/TAXONOMY.md). An arrival is an event whose page
differs from the event before it, so the clicks and form events a person makes on one page do not count.

When machine-paced visits would be more than half of the table nothing is left out: the timestamps are
then too coarse to tell (a whole visit in one second), or the site is one people click through fast.
Left out: user-agent lists (the events contract has no user agent), visits that crawl slowly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

CRAWL_PAGES = 10  # fewest page arrivals of a machine-paced visit
CRAWL_SECONDS = 4.0  # median seconds between arrivals under which a visit is machine-paced
MAX_SHARE = 0.5  # nothing is left out when more than this share of the visits would be


def arrival_times(events: Sequence[Mapping[str, Any]]) -> list[datetime]:
    """When the visit arrived on each page: the events whose page differs from the one before."""
    out, last = [], None
    for e in events:
        page, ts = e.get("page"), e.get("ts")
        if page != last and ts is not None:
            out.append(ts)
        last = page
    return out


def machine_paced(events: Sequence[Mapping[str, Any]]) -> bool:
    """At least `CRAWL_PAGES` page arrivals, with a median time between them under `CRAWL_SECONDS`."""
    times = arrival_times(events)
    if len(times) < CRAWL_PAGES:
        return False
    gaps = np.diff([t.timestamp() for t in times])
    return float(np.median(gaps)) < CRAWL_SECONDS


def human_rows(events: Sequence[Sequence[Mapping[str, Any]]]) -> list[int]:
    """Indices of the visits (each a list of events) that are not machine-paced; all of them when those
    would be more than `MAX_SHARE` of the visits."""
    paced = [machine_paced(evs) for evs in events]
    if sum(paced) > MAX_SHARE * len(paced):
        return list(range(len(paced)))
    return [i for i, p in enumerate(paced) if not p]


def without_crawls(table: pa.Table) -> tuple[pa.Table, int]:
    """(`table` without its machine-paced visits, how many were left out), by `human_rows`."""
    rows = human_rows(table.column("events").to_pylist())
    if len(rows) == table.num_rows:
        return table, 0
    return table.take(pa.array(rows, pa.int64())), table.num_rows - len(rows)
