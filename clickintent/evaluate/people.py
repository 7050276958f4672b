"""Who is the same person: the key that keeps a person's cookies and app install together in every split.

A bank links a web cookie to a customer only through a login (the session then carries the customer id),
and an app install carries the customer on every event. So outside the simulator a person is a connected
group of visitor ids (cookies, app installs) and customer ids joined by such links, and a cookie that never
logged in is a person of its own (`linked_person_keys`). The simulator's truth knows every person, cookies
that never logged in included, and `sim_person_keys` uses it, so on simulated data no split can put two
cookies of one person on different sides (docs/EVALUATION.md). Left out: fuzzy identity matching.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


@dataclass
class PersonKeys:
    """visitor id / customer id -> person key; an id it does not know is a person of its own."""

    visitors: dict[str, str] = field(default_factory=dict)
    customers: dict[str, str] = field(default_factory=dict)

    def of_visitor(self, visitor: str) -> str:
        return self.visitors.get(visitor) or f"v:{visitor}"

    def of_customer(self, customer: str) -> str:
        return self.customers.get(customer) or f"c:{customer}"


def linked_person_keys(sessions: pa.Table, customers: Iterable[str] = ()) -> PersonKeys:
    """Person keys from the customer links in a SESSIONS table (every visitor id with a customer id joins
    that customer's group; a customer with no session is a group of its own)."""
    linked = sessions.filter(pc.is_valid(sessions.column("customer_id")))
    pairs = set(zip(linked.column("visitor_id").to_pylist(), linked.column("customer_id").to_pylist(), strict=True))
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for v, c in sorted(pairs):
        a, b = find(f"v:{v}"), find(f"c:{c}")
        if a != b:
            parent[max(a, b)] = min(a, b)  # the smaller key names the group, so keys do not depend on order
    keys = PersonKeys()
    for v, c in pairs:
        keys.visitors[v] = find(f"v:{v}")
        keys.customers[c] = find(f"c:{c}")
    for c in customers:
        keys.customers.setdefault(c, find(f"c:{c}"))
    return keys


def sim_person_keys(sim_dir: str | Path) -> PersonKeys:
    """Person keys from the simulator's truth: every cookie, app install and customer of a person share
    `p:<person_id>` (bots have none and stay persons of their own)."""
    truth = Path(sim_dir) / "truth"
    sessions = pq.read_table(truth / "sessions.parquet", columns=["visitor_id", "person_id"])
    sessions = sessions.filter(pc.is_valid(sessions.column("person_id")))
    customers = pq.read_table(truth / "customers.parquet", columns=["customer_id", "person_id"])
    return PersonKeys(
        visitors={
            v: f"p:{p}" for v, p in zip(*(sessions.column(c).to_pylist() for c in sessions.column_names), strict=True)
        },
        customers={
            c: f"p:{p}" for c, p in zip(*(customers.column(c).to_pylist() for c in customers.column_names), strict=True)
        },
    )
