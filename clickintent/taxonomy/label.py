"""LLM labels: exactly one taxonomy label (or `other`) per session, restricted, with a confidence.

The prompt (`prompts/label.txt`) lists every label with its description, shows rendered example
sessions per label (the taxonomy's own example ids, when those sessions are in the table), then the
session to label, and ends with `### Label:`. The answer is restricted to the label names: a scoring
backend (the local Gemma) returns the log-likelihood of every name, a grammar/JSON-schema backend returns
one name, and `LLM.run` rejects anything that is not a name. Nothing the model writes is used except
through that lookup. With `neighbours=K` each prompt shows the K taxonomy example visits nearest the
session (MiniLM vectors of their words) just before it, and by default no fixed examples: labels closer
to the clusters, at about twice the cost a label (docs/BENCHMARKS.md, issue 5).

Confidence, from what the backend returned:
- choice scores: softmax over the calibrated scores. Calibration subtracts each name's score on a
  content-free session ("contextual calibration", Zhao et al. 2021, https://arxiv.org/abs/2102.09690),
  which removes the model's prior for short or recently-shown names; the label is the calibrated argmax;
- token log-probabilities only: the probability of the chosen name's tokens;
- neither (a hosted API without logprobs): 1.0, and the table says so only through that constant.

`nearest_description_labels` is the non-LLM baseline: the label whose "name: description" text vector is
nearest the session's text vector (all-MiniLM-L6-v2). Left out: multi-label output, active re-labelling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from clickintent import schema
from clickintent.encoder.text import MiniLMEncoder, TextEncoder
from clickintent.llm.base import LLM, Completion, Request
from clickintent.taxonomy.render import (
    digest_table,
    prompt,
    render_session,
    render_table,
    sample_sessions,
    site_suffix,
)
from clickintent.taxonomy.taxonomy import Taxonomy

STEP = "labels"
DEFAULT_SAMPLE = 2000
CONTENT_FREE = 'device="unknown"; events=0\n1. page_view page="/" title="N/A"'


def _labels_block(taxonomy: Taxonomy) -> str:
    return "\n".join(f"- {lb.name}: {lb.description}" for lb in taxonomy.labels)


def _demonstration(visit_text: str, label_name: str) -> str:
    """One labelled visit, as the few-shot examples and the neighbours show it."""
    return f"### Visit\n{visit_text}\n### Label: {label_name}\n\n"


def _examples_block(
    taxonomy: Taxonomy, sessions: pa.Table | None, suffix: str = "", per_label: int = 1, max_steps: int = 6
) -> str:
    """Rendered example visits: up to `per_label` per label (its example ids found in `sessions`), dealt
    round-robin over the labels so no label owns the end of the prompt."""
    if sessions is None or per_label < 1 or not any(lb.examples for lb in taxonomy.labels):
        return ""
    wanted = {sid for lb in taxonomy.labels for sid in lb.examples}
    ids = sessions.column("session_id").to_pylist()
    rows = {sid: i for i, sid in enumerate(ids) if sid in wanted}
    chosen = [[s for s in lb.examples if s in rows][:per_label] for lb in taxonomy.labels]
    parts = []
    for r in range(per_label):
        for lb, sids in zip(taxonomy.labels, chosen, strict=True):
            if r < len(sids):
                row = sessions.slice(rows[sids[r]], 1).to_pylist()[0]
                text = render_session(row["events"], row.get("platform"), max_steps=max_steps, suffix=suffix)
                parts.append(_demonstration(text, lb.name))
    return "".join(parts)


def nearest_examples(
    table: pa.Table, taxonomy: Taxonomy, pool: pa.Table, k: int, encoder: TextEncoder
) -> tuple[dict[str, list[str]], pa.Table]:
    """(session_id -> the ids of the `k` taxonomy examples nearest it, nearest first; the examples' rows of
    `pool`). Nearest by cosine of MiniLM digest vectors; a session is never its own neighbour."""
    wanted = {sid for lb in taxonomy.labels for sid in lb.examples}
    ex = pool.take([i for i, sid in enumerate(pool.column("session_id").to_pylist()) if sid in wanted])
    if k < 1 or ex.num_rows == 0:
        return {}, ex
    ex_ids = ex.column("session_id").to_pylist()
    sims = encoder.encode(list(digest_table(table).values())) @ encoder.encode(list(digest_table(ex).values())).T
    out = {}
    for i, sid in enumerate(table.column("session_id").to_pylist()):
        out[sid] = [ex_ids[j] for j in np.argsort(-sims[i])[: k + 1] if ex_ids[j] != sid][:k]
    return out, ex


def _neighbour_blocks(
    table: pa.Table,
    taxonomy: Taxonomy,
    pool: pa.Table,
    k: int,
    encoder: TextEncoder,
    suffix: str = "",
    max_steps: int = 4,
    max_chars: int = 48,
) -> dict[str, str]:
    """session_id -> its `nearest_examples` rendered short (`max_steps` steps, `max_chars` a quoted text:
    every token here is paid for on every call) as few-shot demonstrations, the nearest last."""
    near, ex = nearest_examples(table, taxonomy, pool, k, encoder)
    if not near:
        return {}
    label_of = {sid: lb.name for lb in taxonomy.labels for sid in lb.examples}
    ex_text = render_table(ex, suffix=suffix, max_steps=max_steps, max_chars=max_chars)
    return {
        sid: "".join(_demonstration(ex_text[e], label_of[e]) for e in reversed(order)) for sid, order in near.items()
    }


def label_prompt(taxonomy: Taxonomy, session_text: str, examples: str = "") -> str:
    return prompt("label", labels=_labels_block(taxonomy), examples=examples, session=session_text)


def label_request(taxonomy: Taxonomy, session_text: str, examples: str = "") -> Request:
    return Request(label_prompt(taxonomy, session_text, examples), max_tokens=16, choices=tuple(taxonomy.names))


def _softmax(scores: Mapping[str, float]) -> dict[str, float]:
    m = max(scores.values())
    e = {k: math.exp(v - m) for k, v in scores.items()}
    z = sum(e.values())
    return {k: v / z for k, v in e.items()}


def decide(completion: Completion, prior: Mapping[str, float] | None) -> tuple[str, float]:
    """(label name, confidence) from one restricted answer; see the module docstring."""
    if completion.choice_logprobs:
        scores = dict(completion.choice_logprobs)
        if prior:
            scores = {k: v - prior.get(k, 0.0) for k, v in scores.items()}
        probs = _softmax(scores)
        best = max(probs, key=lambda k: probs[k])
        return best, probs[best]
    lp = completion.logprob
    return completion.text, (1.0 if lp is None else float(min(1.0, math.exp(lp))))


def label_sessions(
    sessions: pa.Table,
    taxonomy: Taxonomy,
    llm: LLM,
    *,
    sample: int | None = DEFAULT_SAMPLE,
    seed: int = 0,
    calibrate: bool | None = None,
    examples: int | None = None,
    neighbours: int = 0,
    example_sessions: pa.Table | None = None,
    text_encoder: TextEncoder | None = None,
    step: str = STEP,
) -> pa.Table:
    """labels.parquet rows (schema.LABELS, source 'llm') for a sample of `sessions`.

    `examples`: example visits shown per label (0: none), looked up by the taxonomy's example ids in
    `example_sessions` (default: `sessions`; it must hold the sessions the taxonomy was built from).
    None: 1 without neighbours, 0 with them (on a development world both at 4 neighbours scored within
    0.007 NMI, and the fixed examples made each label 1.6 times as slow; docs/BENCHMARKS.md).
    `neighbours`: the taxonomy example visits most like each session (by MiniLM vectors of their words,
    `text_encoder`), shown just before it; these make each prompt different.
    `calibrate` None: calibrate only without neighbours (the content-free reference prompt has no
    neighbours, so its prior does not describe prompts that have them; on a development world calibrating
    them cost 0.017 NMI).
    """
    if calibrate is None:
        calibrate = neighbours == 0
    if examples is None:
        examples = 0 if neighbours else 1
    table = sample_sessions(sessions, sample, seed)
    suffix = site_suffix([e.get("page_title") for evs in table.column("events").to_pylist() for e in evs]) or ""
    texts = render_table(table, suffix=suffix)
    pool = sessions if example_sessions is None else example_sessions
    shots = _examples_block(taxonomy, pool, suffix, per_label=examples)
    prior: dict[str, float] | None = None
    if calibrate:
        ref = llm.run_one(label_request(taxonomy, CONTENT_FREE, shots), f"{step} (calibration)")
        prior = ref.choice_logprobs  # None for backends that cannot score every choice
    ids = list(texts)
    near = _neighbour_blocks(table, taxonomy, pool, neighbours, text_encoder or MiniLMEncoder(), suffix)
    out = llm.run([label_request(taxonomy, texts[i], shots + near.get(i, "")) for i in ids], step)
    names, confs = [], []
    for c in out:
        name, conf = decide(c, prior)
        names.append(taxonomy.by_name(name).id)
        confs.append(conf)
    return _labels_table(ids, names, confs, "llm", taxonomy.version)


def _labels_table(ids: list[str], intents: list[str], confs: list[float], source: str, version: str) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "session_id": pa.array(ids, pa.string()),
            "intent": pa.array(intents, pa.string()),
            "confidence": pa.array(confs, pa.float32()),
            "source": pa.array([source] * n, pa.string()),
            "taxonomy_version": pa.array([version] * n, pa.string()),
        },
        schema=schema.LABELS,
    )


def nearest_description_labels(
    texts: Mapping[str, str],
    taxonomy: Taxonomy,
    encoder: TextEncoder | None = None,
    *,
    other_below: float = 0.0,
) -> dict[str, tuple[str, float]]:
    """session_id -> (label id, cosine) by nearest "name: description" vector; no LLM.

    Sessions whose best cosine is below `other_below` get `other`; `other` itself is never nearest.
    """
    enc = encoder or MiniLMEncoder()
    labels = [lb for lb in taxonomy.labels if lb.id != "other"]
    if not labels or not texts:
        return {sid: ("other", 0.0) for sid in texts}
    lv = enc.encode([f"{lb.name}: {lb.description}" for lb in labels])
    ids = list(texts)
    sv = enc.encode([texts[i] for i in ids])
    sims = sv @ lv.T
    best = sims.argmax(axis=1)
    out = {}
    for i, sid in enumerate(ids):
        cos = float(sims[i, best[i]])
        out[sid] = ("other", cos) if cos < other_below else (labels[int(best[i])].id, cos)
    return out
