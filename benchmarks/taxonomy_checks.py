"""The taxonomy checks of issue 19, written from the simulator's own world so that they can fail.

- `category_check`: a label passes when its category names a section of the simulated site (one of
  `clickintent.sim.catalogue.SECTION_GROUPS`, known by its key, the breadcrumbs of its pages' titles and
  the first path segments of its pages) and more than half of the label's visits touch a page of that
  section (pages mapped to sections by the catalogue, the shifted config's extra pages included).
- `name_check`: a label passes when a *blind* nearest-intent match of its "name: description" (MiniLM
  cosine against each simulated intent's "name: description", `clickintent.sim.intents.INTENTS`) is the
  true intent most of its visits have. The matcher sees only the label's text, never its visits; the
  confusions (label, matched intent, majority intent and its share) are returned for the report.

Neither check reads anything the taxonomy builder can see: the builder never imports the simulator.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clickintent.sim.catalogue import BRAND, GROUP_SECTION, SECTION_GROUPS, Page, default_pages
from clickintent.sim.intents import INTENTS

_NORM = re.compile(r"[^a-z]+")


def _norm(text: str) -> str:
    return " ".join(_NORM.sub(" ", text.lower()).split())


def _path(page: str) -> str:
    """`www.examplebank.com/home-loans/refinance?x=1` -> `/home-loans/refinance`."""
    rest = page.split("//", 1)[-1]
    path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    return path.split("?", 1)[0].rstrip("/") or "/"


def _pattern(catalogue_path: str) -> re.Pattern[str]:
    path = catalogue_path.split("?", 1)[0].rstrip("/") or "/"
    parts = [re.escape(p) for p in re.split(r"\{[^}]*\}", path)]
    return re.compile("^" + r"[^/]+".join(parts) + "$")


@dataclass
class SiteSections:
    """The simulated site's sections: which section a page is in, and the names each section goes by."""

    patterns: list[tuple[re.Pattern[str], str]]  # path pattern -> section key
    aliases: dict[str, set[str]]  # section key -> normalised names

    @classmethod
    def of(cls, config: str | None = None) -> SiteSections:
        pages: list[Page] = list(default_pages())
        if config:
            from clickintent.sim.config import load_config

            cfg = load_config(config)
            pages += list(cfg.extra_pages)
        aliases: dict[str, set[str]] = {s: {_norm(s.replace("-", " "))} for s in SECTION_GROUPS}
        patterns = []
        for p in pages:
            section = GROUP_SECTION[p.group]
            patterns.append((_pattern(p.path), section))
            crumbs = [c.strip() for c in p.title.split(" | ")[1:] if c.strip() != BRAND]
            aliases[section] |= {_norm(c) for c in crumbs if not any(ch.isdigit() for ch in c)}
            first = p.path.split("?", 1)[0].strip("/").split("/", 1)[0]
            if first:
                aliases[section].add(_norm(first.replace("-", " ")))
        return cls(patterns, aliases)

    def section(self, page: str) -> str | None:
        path = _path(page)
        for pattern, section in self.patterns:
            if pattern.match(path):
                return section
        return None

    def named(self, category: str) -> str | None:
        """The section a category name names, if any."""
        key = _norm(category)
        for section, names in self.aliases.items():
            if key in names:
                return section
        return None


@dataclass
class CheckResult:
    passed: int
    total: int
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per label: what was checked, and why

    @property
    def share(self) -> float:
        return self.passed / max(1, self.total)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "labels": self.total, "share": round(self.share, 4), "rows": self.rows}


def category_check(
    taxonomy: Any, members: Mapping[str, str], events: Mapping[str, Sequence[Mapping[str, Any]]], site: SiteSections
) -> CheckResult:
    """`members`: session_id -> label id (the visits of each label); `events`: session_id -> its events."""
    by_label: dict[str, list[str]] = {}
    for sid, lid in members.items():
        by_label.setdefault(lid, []).append(sid)
    rows, passed = [], 0
    for lb in taxonomy.labels:
        sids = by_label.get(lb.id, [])
        if lb.id == "other" or not sids:
            continue
        named = site.named(lb.category)
        inside = sum(any(site.section(e["page"]) == named for e in events[s] if e.get("page")) for s in sids)
        share = inside / len(sids) if named else 0.0
        ok = named is not None and share > 0.5
        passed += ok
        rows.append({"label": lb.name, "category": lb.category, "section": named, "visits": len(sids),
                     "share_in_section": round(share, 3), "pass": ok})  # fmt: skip
    return CheckResult(passed, len(rows), rows)


def intent_texts() -> dict[str, str]:
    return {i.name: f"{i.name.replace('_', ' ')}: {i.description}" for i in INTENTS}


def name_check(taxonomy: Any, members: Mapping[str, str], truth: Mapping[str, str], encoder: Any) -> CheckResult:
    """`members`: session_id -> label id; `truth`: session_id -> true intent (sessions without one skipped)."""
    intents = intent_texts()
    names = list(intents)
    iv = encoder.encode([intents[n] for n in names])
    by_label: dict[str, Counter[str]] = {}
    for sid, lid in members.items():
        if sid in truth:
            by_label.setdefault(lid, Counter())[truth[sid]] += 1
    labels = [lb for lb in taxonomy.labels if lb.id != "other" and by_label.get(lb.id)]
    if not labels:
        return CheckResult(0, 0)
    lv = encoder.encode([f"{lb.name}: {lb.description}" for lb in labels])
    sims = np.asarray(lv) @ np.asarray(iv).T
    rows, passed = [], 0
    for lb, row in zip(labels, sims, strict=True):
        matched = names[int(np.argmax(row))]
        counts = by_label[lb.id]
        majority, n = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        ok = matched == majority
        passed += ok
        rows.append({"label": lb.name, "description": lb.description, "matched_intent": matched,
                     "majority_intent": majority, "majority_share": round(n / sum(counts.values()), 3),
                     "pass": ok})  # fmt: skip
    return CheckResult(passed, len(rows), rows)
