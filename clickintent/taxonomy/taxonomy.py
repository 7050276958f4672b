"""The intent taxonomy: a versioned, two-level (category > label) list of labels, stored as taxonomy.json.

Each label has a stable id (a slug of its name), a name, a one-line description, its category, example
session ids, a few of those visits written out as the labelling prompt shows them (`render_pages`: quoted,
redacted), and its share of the sessions it was built from. An `other` label always exists, so every
session has exactly one label. `version` is a digest of the content that labelling depends on (ids,
names, descriptions, categories), so labels.parquet rows name the exact taxonomy that produced them and
a hand-edited taxonomy.json gets a new version on load.

Everything read from JSON is validated (types, lengths, unique ids and names, exactly one `other`):
taxonomy.json may come from an LLM or a person, and nothing in it is executed.
Left out: more than two levels, label hierarchies inside a category, translations.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
OTHER_ID = "other"
OTHER_NAME = "Other"
OTHER_CATEGORY = "Other"
OTHER_DESCRIPTION = "None of the other labels fits the visit."
MAX_NAME_CHARS = 60
MAX_DESCRIPTION_CHARS = 240
MAX_VISITS = 5  # example visits written out per label
MAX_VISIT_CHARS = 800

_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(name: str) -> str:
    """`Remortgage application` -> `remortgage-application`."""
    return _SLUG.sub("-", name.lower()).strip("-") or "label"


@dataclass
class Label:
    """One intent label."""

    id: str
    name: str
    description: str
    category: str
    examples: list[str] = field(default_factory=list)  # session ids
    share: float = 0.0  # of the sessions the taxonomy was built from
    visits: list[str] = field(default_factory=list)  # the first examples written out (render_pages)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "examples": list(self.examples),
            "share": round(float(self.share), 6),
        }
        if self.visits:
            out["visits"] = list(self.visits)
        return out


def other_label(share: float = 0.0, examples: list[str] | None = None) -> Label:
    return Label(OTHER_ID, OTHER_NAME, OTHER_DESCRIPTION, OTHER_CATEGORY, examples or [], share)


@dataclass
class Taxonomy:
    """Labels (with `other` last) plus how they were made. Build with `Taxonomy.create`."""

    labels: list[Label]
    mode: str = "manual"  # 'cluster' | 'llm' | 'manual'
    created: str = ""
    generator: dict[str, Any] = field(default_factory=dict)  # backend, model, parameters, usage

    @classmethod
    def create(cls, labels: list[Label], mode: str = "manual", generator: dict[str, Any] | None = None) -> Taxonomy:
        """A validated taxonomy from `labels`; adds `other` if missing and makes ids unique."""
        rest = [lb for lb in labels if lb.id != OTHER_ID and lb.name.lower() != OTHER_NAME.lower()]
        others = [lb for lb in labels if lb not in rest]
        used: set[str] = {OTHER_ID}
        for lb in rest:
            base = slugify(lb.id or lb.name)
            lb.id, n = base, 2
            while lb.id in used:
                lb.id, n = f"{base}-{n}", n + 1
            used.add(lb.id)
        other = others[0] if others else other_label()
        other.id, other.name, other.category = OTHER_ID, OTHER_NAME, OTHER_CATEGORY
        tax = cls(
            labels=[*rest, other],
            mode=mode,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            generator=generator or {},
        )
        tax.validate()
        return tax

    # -- views ----------------------------------------------------------------------------------

    @property
    def version(self) -> str:
        # Written-out visits are shown to the labelling LLM, so they are part of the version when present.
        core = [
            [lb.id, lb.name, lb.description, lb.category, *([lb.visits] if lb.visits else [])] for lb in self.labels
        ]
        digest = hashlib.sha256(json.dumps([SCHEMA_VERSION, core]).encode()).hexdigest()
        return f"tx-{digest[:12]}"

    @property
    def ids(self) -> list[str]:
        return [lb.id for lb in self.labels]

    @property
    def names(self) -> list[str]:
        return [lb.name for lb in self.labels]

    def by_id(self, label_id: str) -> Label:
        for lb in self.labels:
            if lb.id == label_id:
                return lb
        raise KeyError(label_id)

    def by_name(self, name: str) -> Label:
        for lb in self.labels:
            if lb.name == name:
                return lb
        raise KeyError(name)

    def categories(self) -> dict[str, list[Label]]:
        """Category name -> its labels, in first-seen order (`Other` last)."""
        out: dict[str, list[Label]] = {}
        for lb in self.labels:
            out.setdefault(lb.category, []).append(lb)
        if OTHER_CATEGORY in out:
            out[OTHER_CATEGORY] = out.pop(OTHER_CATEGORY)
        return out

    def tree(self, visits: bool = False) -> str:
        """The two levels as indented text with shares, largest first: what the CLI prints. `visits`: each
        label's first example visit under it (`clickintent taxonomy show`)."""
        lines = [f"taxonomy {self.version} ({self.mode}, {len(self.labels) - 1} labels + Other)"]
        cats = sorted(
            self.categories().items(), key=lambda kv: (kv[0] == OTHER_CATEGORY, -sum(lb.share for lb in kv[1]))
        )
        for cat, labels in cats:
            lines.append(f"{cat}  {sum(lb.share for lb in labels):.1%}")
            for lb in sorted(labels, key=lambda lb: -lb.share):
                lines.append(f"  {lb.name}  {lb.share:.1%}  {lb.description}")
                if visits and lb.visits:
                    lines += [f"      {ln}" for ln in lb.visits[0].split("\n")]
        return "\n".join(lines)

    # -- validation and I/O ---------------------------------------------------------------------

    def validate(self) -> None:
        if not self.labels:
            raise ValueError("a taxonomy needs at least the `other` label")
        ids, names = self.ids, [n.lower() for n in self.names]
        if len(set(ids)) != len(ids):
            raise ValueError(f"label ids are not unique: {ids}")
        if len(set(names)) != len(names):
            raise ValueError(f"label names are not unique: {self.names}")
        if ids.count(OTHER_ID) != 1:
            raise ValueError("a taxonomy has exactly one `other` label")
        for lb in self.labels:
            if not lb.id or lb.id != slugify(lb.id):
                raise ValueError(f"label id {lb.id!r} is not a slug")
            if not lb.name.strip() or len(lb.name) > MAX_NAME_CHARS or "\n" in lb.name:
                raise ValueError(f"label name {lb.name!r} must be one line of 1-{MAX_NAME_CHARS} characters")
            if len(lb.description) > MAX_DESCRIPTION_CHARS or "\n" in lb.description:
                raise ValueError(f"description of {lb.name!r} must be one line of <= {MAX_DESCRIPTION_CHARS}")
            if not lb.category.strip() or len(lb.category) > MAX_NAME_CHARS or "\n" in lb.category:
                raise ValueError(f"category of {lb.name!r} must be one short line")
            if not 0.0 <= lb.share <= 1.0 + 1e-6:
                raise ValueError(f"share of {lb.name!r} is {lb.share}, not in [0, 1]")
            if len(lb.visits) > MAX_VISITS or any(len(v) > MAX_VISIT_CHARS for v in lb.visits):
                raise ValueError(f"{lb.name!r}: at most {MAX_VISITS} visits of <= {MAX_VISIT_CHARS} characters")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "version": self.version,
            "mode": self.mode,
            "created": self.created,
            "generator": self.generator,
            "categories": [
                {"name": cat, "labels": [lb.id for lb in labels]} for cat, labels in self.categories().items()
            ],
            "labels": [lb.to_dict() for lb in self.labels],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Taxonomy:
        if not isinstance(d, dict) or d.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"not a taxonomy.json of schema_version {SCHEMA_VERSION}")
        raw = d.get("labels")
        if not isinstance(raw, list):
            raise ValueError("taxonomy.json: `labels` must be a list")
        labels = []
        for item in raw:
            if not isinstance(item, dict):
                raise ValueError("taxonomy.json: each label must be an object")
            examples = item.get("examples") or []
            if not isinstance(examples, list) or not all(isinstance(x, str) for x in examples):
                raise ValueError("taxonomy.json: `examples` must be a list of session ids")
            visits = item.get("visits") or []
            if not isinstance(visits, list) or not all(isinstance(x, str) for x in visits):
                raise ValueError("taxonomy.json: `visits` must be a list of strings")
            labels.append(
                Label(
                    id=_str(item, "id"),
                    name=_str(item, "name"),
                    description=_str(item, "description", required=False),
                    category=_str(item, "category"),
                    examples=examples,
                    share=float(item.get("share") or 0.0),
                    visits=visits,
                )
            )
        generator = d.get("generator") or {}
        tax = cls(labels, mode=str(d.get("mode", "manual")), created=str(d.get("created", "")), generator=generator)
        tax.validate()
        return tax

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Taxonomy:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _str(d: dict[str, Any], key: str, required: bool = True) -> str:
    v = d.get(key, "")
    if not isinstance(v, str) or (required and not v.strip()):
        raise ValueError(f"taxonomy.json: label field `{key}` must be a non-empty string")
    return v.strip()


@dataclass
class Generated:
    """A generated taxonomy and what generation learned about its own sample."""

    taxonomy: Taxonomy
    assignments: dict[str, str] = field(default_factory=dict)  # session_id -> label id (the sample)
    summaries: dict[str, str] = field(default_factory=dict)  # session_id -> summary (llm mode)
