"""`llm` mode: a taxonomy written by a capable instruction-following model (TnT-LLM, Wan et al. 2024,
https://arxiv.org/abs/2403.12173).

Summaries of the sample (`summarize.py`), a taxonomy generated from the first minibatch of summaries,
updated with each next minibatch, then reviewed once (`prompts/llm_*.txt`). Each answer is JSON restricted
to `TAXONOMY_SCHEMA` where the server supports it and always validated here (`parse_taxonomy_json`: the
exact structure, short names, one-line descriptions, no repeats, at most `max_labels`); an invalid answer is
retried by `LLM.run` and, when every retry fails, the step fails with a clear message. Shares and example
sessions come from the nearest label description of each summary (MiniLM), an estimate that
`taxonomy label` replaces with LLM labels.

The embedded Gemma 3 270M cannot write such a taxonomy (its grammar-restricted answers have empty names;
docs/BENCHMARKS.md), which is why `cluster` mode exists. Left out: human review between the steps.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from clickintent.encoder.text import MiniLMEncoder, TextEncoder
from clickintent.llm.base import LLM, Completion, MalformedOutput, Request
from clickintent.taxonomy.label import nearest_description_labels
from clickintent.taxonomy.naming import clean_name
from clickintent.taxonomy.render import prompt, render_table, sample_sessions
from clickintent.taxonomy.summarize import summarize
from clickintent.taxonomy.taxonomy import Generated, Label, Taxonomy, slugify

TAXONOMY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "categories": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "labels": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}, "description": {"type": "string"}},
                            "required": ["name", "description"],
                            "additionalProperties": False,
                        },
                    },
                },
                "required": ["name", "labels"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["categories"],
    "additionalProperties": False,
}


def parse_taxonomy_json(text: str, max_labels: int) -> list[Label]:
    """Labels from an `llm`-mode answer; raises `MalformedOutput` unless it is exactly the schema's shape."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise MalformedOutput(f"taxonomy answer is not JSON: {e}") from e
    cats = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(cats, list) or not cats:
        raise MalformedOutput("taxonomy answer has no `categories` list")
    labels: list[Label] = []
    seen: set[str] = set()
    for cat in cats:
        if not isinstance(cat, dict) or not isinstance(cat.get("labels"), list):
            raise MalformedOutput("each category needs a `name` and a `labels` list")
        cname = clean_name(str(cat.get("name", "")), max_words=4)
        for item in cat["labels"]:
            if not isinstance(item, dict):
                raise MalformedOutput("each label must be an object")
            try:
                name = clean_name(str(item.get("name", "")))
            except MalformedOutput:
                if str(item.get("name", "")).strip().lower() == "other":
                    continue  # the model added the catch-all we add ourselves
                raise
            desc = " ".join(str(item.get("description", "")).split())
            if not desc or len(desc) > 240:
                raise MalformedOutput(f"label {name!r} needs a one-line description")
            if name.lower() in seen:
                raise MalformedOutput(f"label {name!r} appears twice")
            seen.add(name.lower())
            labels.append(Label(slugify(name), name, desc, cname))
    if not labels:
        raise MalformedOutput("taxonomy answer has no labels")
    if len(labels) > max_labels:
        raise MalformedOutput(f"{len(labels)} labels, more than the {max_labels} allowed")
    return labels


def _taxonomy_json(labels: list[Label]) -> str:
    cats: dict[str, list[dict[str, str]]] = {}
    for lb in labels:
        cats.setdefault(lb.category, []).append({"name": lb.name, "description": lb.description})
    return json.dumps({"categories": [{"name": c, "labels": v} for c, v in cats.items()]}, indent=1)


def generate_llm(
    sessions: pa.Table,
    llm: LLM,
    *,
    text_encoder: TextEncoder | None = None,
    max_labels: int = 12,
    sample: int | None = 2000,
    seed: int = 0,
    batch_size: int = 100,
    max_categories: int = 5,
) -> Generated:
    """A taxonomy written by the LLM from minibatches of summaries: generate, update, review (`text_encoder`,
    MiniLM when None, places each summary under its nearest label for the shares)."""
    table = sample_sessions(sessions, sample, seed)
    summaries = summarize(render_table(table), llm)
    ids = list(summaries)
    rng = np.random.default_rng(seed)
    order = [ids[i] for i in rng.permutation(len(ids))]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    system = prompt("llm_system")
    schema = json.dumps(TAXONOMY_SCHEMA)
    limits = {"max_labels": str(max_labels), "max_categories": str(max_categories)}

    def check(request: Request, completion: Completion) -> None:
        parse_taxonomy_json(completion.text, max_labels)

    def ask(text: str, step: str) -> list[Label]:
        req = Request(text, system=system, max_tokens=2048, json_schema=schema)
        return parse_taxonomy_json(llm.run_one(req, step, check=check).text, max_labels)

    def listed(batch: list[str]) -> str:
        return "\n".join(f"- {json.dumps(summaries[s], ensure_ascii=False)}" for s in batch)

    labels = ask(prompt("llm_generate", summaries=listed(batches[0]), **limits), "taxonomy generate")
    for b, batch in enumerate(batches[1:], start=2):
        labels = ask(
            prompt("llm_update", taxonomy=_taxonomy_json(labels), summaries=listed(batch), **limits),
            f"taxonomy update {b}/{len(batches)}",
        )
    labels = ask(prompt("llm_review", taxonomy=_taxonomy_json(labels), **limits), "taxonomy review")

    draft = Taxonomy.create(labels, mode="llm")
    nearest = nearest_description_labels(summaries, draft, text_encoder or MiniLMEncoder())
    counts = Counter(lid for lid, _ in nearest.values())
    for lb in draft.labels:
        lb.share = counts.get(lb.id, 0) / max(1, len(ids))
        lb.examples = [sid for sid in ids if nearest[sid][0] == lb.id][:5]
    tax = Taxonomy.create(
        draft.labels,
        mode="llm",
        generator={
            "backend": llm.name,
            "model": llm.model,
            "sessions": len(ids),
            "batch_size": batch_size,
            "seed": seed,
            "max_labels": max_labels,
            "share_method": "nearest label description of each summary (MiniLM)",
            "usage": {step: u.to_dict() for step, u in llm.usage.items()},
        },
    )
    return Generated(tax, {sid: lid for sid, (lid, _) in nearest.items()}, summaries)
