"""The simulated bank's web catalogue: sections, page groups and pages with URL patterns and titles.

The catalogue is data: `data/catalogue.json` (package data) holds the site, the brand, the dwell factor of
each kind of page, the sections with their groups, the application steps and every page but the
application pages; this module reads it once and builds the application pages, one per product and step,
from the product list. Edit the JSON to change the default site (docs/ARCHITECTURE.md says how); a config's
`extra_pages` adds pages without touching it.

A page belongs to one *group* (the states of the intent journeys in `intents.py`); a group belongs to one
*section* of the site. A path may hold one placeholder that generation fills per event: `{appId}` (the
session's application id), `{acct}` (the customer's account reference), `{id}` (a random id: job
postings, press releases) or `{q}` (the search text). Application pages exist once per product and step;
generation picks the page of the product the visitor is applying for. Page content is not modelled:
only URL, title and the kind of page (which sets dwell and form events). A page's title in the JSON leaves
out the " | <brand>" suffix every title ends with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clickintent.sim.products import PRODUCT_IDS, PRODUCTS

DATA_FILE = Path(__file__).parent / "data" / "catalogue.json"
_DATA: dict[str, Any] = json.loads(DATA_FILE.read_text(encoding="utf-8"))

SITE: str = _DATA["site"]
BRAND: str = _DATA["brand"]

PLACEHOLDERS = ("{appId}", "{acct}", "{id}", "{q}")

# Seconds on a page relative to the intent's median dwell, by kind of page.
KIND_DWELL: dict[str, float] = {k: float(v) for k, v in _DATA["kind_dwell"].items()}

# Groups by section; the order fixes the group index used by the journeys.
SECTION_GROUPS: dict[str, tuple[str, ...]] = {s: tuple(groups) for s, groups in _DATA["section_groups"].items()}
SECTIONS: tuple[str, ...] = tuple(SECTION_GROUPS)
GROUPS: tuple[str, ...] = tuple(g for groups in SECTION_GROUPS.values() for g in groups)
GROUP_SECTION: dict[str, str] = {g: s for s, groups in SECTION_GROUPS.items() for g in groups}
_APPLY_STEP_NAMES: tuple[str, ...] = tuple(_DATA["apply_steps"])
APPLY_STEPS = len(_APPLY_STEP_NAMES)


@dataclass(frozen=True)
class Page:
    path: str  # URL path (and fixed query), may hold one of PLACEHOLDERS
    title: str  # the <title>, brand suffix included
    group: str  # journey state it belongs to (one of GROUPS)
    kind: str  # a key of KIND_DWELL
    product: str | None = None  # product the page sells, if any (one of PRODUCT_IDS)
    weight: float = 1.0  # relative chance among the pages of its group
    form: str | None = None  # 'start' or 'submit' when the page logs a form event


def _t(*parts: str) -> str:
    return " | ".join((*parts, BRAND))


def _page(row: dict[str, Any]) -> Page:
    return Page(
        row["path"],
        _t(row["title"]),
        row["group"],
        row["kind"],
        row.get("product"),
        float(row.get("weight", 1.0)),
        row.get("form"),
    )


def _apply() -> list[Page]:
    pages = []
    for product in PRODUCTS:
        for k, step in enumerate(_APPLY_STEP_NAMES, start=1):
            pages.append(
                Page(
                    f"/apply/step-{k}?product={product.slug}&appId={{appId}}",
                    _t(f"{product.name} application", f"Step {k} of {APPLY_STEPS}: {step}"),
                    f"apply_{k}",
                    "apply",
                    product.id,
                    form="start" if k == 1 else "submit" if k == APPLY_STEPS else None,
                )
            )
    return pages


def default_pages() -> tuple[Page, ...]:
    """Every page of the default catalogue, grouped by section: the data file's, then the application pages."""
    return (*(_page(row) for row in _DATA["pages"]), *_apply())


def validate_pages(pages: tuple[Page, ...]) -> None:
    """Fail on an unknown group, kind or product, a second placeholder, or a repeated path."""
    seen: set[str] = set()
    for p in pages:
        if p.group not in GROUP_SECTION:
            raise ValueError(f"page {p.path!r}: unknown group {p.group!r}; known: {', '.join(GROUPS)}")
        if p.kind not in KIND_DWELL:
            raise ValueError(f"page {p.path!r}: unknown kind {p.kind!r}; known: {', '.join(KIND_DWELL)}")
        if p.product is not None and p.product not in PRODUCT_IDS:
            raise ValueError(f"page {p.path!r}: unknown product {p.product!r}")
        if p.form not in (None, "start", "submit"):
            raise ValueError(f"page {p.path!r}: form must be 'start', 'submit' or null")
        if not p.path.startswith("/") or sum(p.path.count(h) for h in PLACEHOLDERS) > 1:
            raise ValueError(f"page {p.path!r}: path must start with '/' and hold at most one placeholder")
        if p.weight <= 0:
            raise ValueError(f"page {p.path!r}: weight must be positive")
        if p.path in seen:
            raise ValueError(f"page {p.path!r} appears twice")
        seen.add(p.path)
