"""LLM labels: exactly one taxonomy label (or `other`) per session, restricted, with a confidence.

The prompt (`prompts/label.txt`) lists every label with its description, then labelled demonstration
visits, then the visit to label, and ends with `### Label:`. A visit is written as the pages it viewed and
what it searched for (`render.render_pages`: quoted, redacted, a few tokens a page), so the part of a
prompt that differs per visit is short: that part is what a CPU-bound model pays for on every call. Two
swappable parts are passed in as objects (STYLE.md item 3), each with a cheap default:

- `Demonstrations`: what is shown before the visit. `LabelVisits` (default): each label's own example
  visits as the taxonomy wrote them out, the same block in every prompt, so the local backend evaluates it
  once (KV cache); `NeighbourVisits`: the K taxonomy example visits nearest the session (MiniLM vectors of
  their words), every prompt different; `NoDemonstrations`.
- `Candidates`: which labels the answer may be, each session's `Shortlist`. `AllLabels` (default), or
  `NearestLabels`: the M labels whose example visits are nearest the session (mean cosine to the 3 of each
  label's examples most like it, `NEAREST_EXAMPLES`), and `Other`. The model then ranks a short list the
  data proposes (STYLE.md item 15), which is faster and, measured on development worlds, more accurate
  than asking it to rank every label (docs/TAXONOMY.md). A shortlist also carries those cosines, which the
  choice scores may add.

The answer is restricted to the candidates' names: a scoring backend (the local Gemma) returns the
log-likelihood of every name, a grammar/JSON-schema backend returns one name, and `LLM.run` rejects
anything that is not a candidate. Nothing the model writes is used except through that lookup.

Confidence, from what the backend returned:
- choice scores: softmax over the candidates' scores, calibrated when `calibrate` is on by subtracting each
  name's score on a content-free visit ("contextual calibration", Zhao et al. 2021,
  https://arxiv.org/abs/2102.09690), which removes the model's prior for short or recently-shown names;
  plus `similarity_weight` times the session's cosine to the name's example visits (issue 19:
  the 270M model's pick among the nearest labels did worse than the nearest label alone, so the data's
  similarity and the model's preference are added, the model deciding where the similarities are close).
  A name without example visits (`Other`, or a label whose examples are not in the pool) gets the mean of
  the shortlisted labels' cosines: neither favoured nor held back by the similarity, so it wins only on
  the model's score. With a weight the confidence is a softmax of that sum, sharper than the model's;
- token log-probabilities only: the probability of the chosen name's tokens;
- neither (a hosted API without logprobs): 1.0, and the table says so only through that constant.

`nearest_description_labels` is the non-LLM baseline: the label whose "name: description" text vector is
nearest the session's text vector (all-MiniLM-L6-v2). Left out: multi-label output, active re-labelling.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from clickintent import schema
from clickintent.encoder.text import MiniLMEncoder, TextEncoder
from clickintent.llm.base import LLM, Completion, Request
from clickintent.taxonomy.render import digest_table, prompt, render_pages, sample_sessions, site_suffix
from clickintent.taxonomy.taxonomy import OTHER_ID, Taxonomy

STEP = "labels"
DEFAULT_SAMPLE = 2000
# Added to a name's calibrated log-likelihood per unit of cosine to its example visits; 0 = the model
# alone. Chosen on development worlds 7 and 11 (docs/TAXONOMY.md, "The similarity weight").
SIMILARITY_WEIGHT = 100.0
# A label's similarity to a visit is the mean cosine of the visit to this many of the label's example visits
# most like it (all of them when it has fewer): a visit is like the nearest members of its spectral cluster,
# not like their average. Development worlds 7, 11 and 13: the nearest label's first choice agreed with the
# true intents at many-to-one 0.793 on average with 3, 0.785 with 5, 0.767 with all 20 (docs/TAXONOMY.md).
NEAREST_EXAMPLES = 3
CONTENT_FREE = render_pages([])  # a visit with no pages: the calibration reference


def demonstration(visit_text: str, label_name: str) -> str:
    """One labelled visit, as every demonstration strategy shows it."""
    return f"### Visit\n{visit_text}\n### Label: {label_name}\n\n"


class ExampleIndex:
    """The taxonomy's example sessions found in `pool`, with MiniLM vectors of their words: what the
    neighbour demonstrations and the nearest-label candidates look up. Built once per labelling run."""

    def __init__(self, taxonomy: Taxonomy, pool: pa.Table, encoder: TextEncoder) -> None:
        label_of = {sid: lb.id for lb in taxonomy.labels for sid in lb.examples}
        ids = pool.column("session_id").to_pylist()
        rows = [i for i, sid in enumerate(ids) if sid in label_of]
        self.table = pool.take(pa.array(rows, pa.int64()))
        self.ids: list[str] = self.table.column("session_id").to_pylist()
        self.labels: list[str] = [label_of[s] for s in self.ids]
        self.encoder = encoder
        digests = digest_table(self.table)
        self.vectors = encoder.encode([digests[s] for s in self.ids]) if self.ids else np.zeros((0, encoder.dim))

    def similarities(self, table: pa.Table) -> np.ndarray:
        """Cosine of each session of `table` (rows) to each example (columns)."""
        digests = digest_table(table)
        vecs = self.encoder.encode([digests[s] for s in table.column("session_id").to_pylist()])
        return np.asarray(vecs @ self.vectors.T, dtype=np.float64)


# -- demonstrations ---------------------------------------------------------------------------------


class Demonstrations(ABC):
    """The labelled visits a labelling prompt shows before the visit to label."""

    @abstractmethod
    def blocks(self, table: pa.Table, taxonomy: Taxonomy, suffix: str) -> dict[str, str]:
        """session_id -> the demonstrations for that session of `table` (`suffix`: the site name that
        titles end with, dropped when visits are written out)."""


@dataclass(frozen=True)
class NoDemonstrations(Demonstrations):
    """No demonstrations: the label list alone."""

    def blocks(self, table: pa.Table, taxonomy: Taxonomy, suffix: str) -> dict[str, str]:
        return dict.fromkeys(table.column("session_id").to_pylist(), "")


@dataclass(frozen=True)
class LabelVisits(Demonstrations):
    """Up to `per_label` example visits per label, as the taxonomy wrote them out (`Label.visits`), dealt
    round-robin over the labels so no label owns the end of the prompt. The same block for every session,
    so it sits in the prompt's shared prefix. Labels without written-out visits show none."""

    per_label: int = 1

    def blocks(self, table: pa.Table, taxonomy: Taxonomy, suffix: str) -> dict[str, str]:
        parts = []
        for r in range(self.per_label):
            for lb in taxonomy.labels:
                if r < len(lb.visits):
                    parts.append(demonstration(lb.visits[r], lb.name))
        return dict.fromkeys(table.column("session_id").to_pylist(), "".join(parts))


@dataclass
class NeighbourVisits(Demonstrations):
    """The `k` taxonomy example visits most like each session (cosine of MiniLM vectors of their words,
    never the session itself), nearest last, labelled with their label. `pool`: sessions holding the
    taxonomy's example ids (the table it was built from). Every prompt differs after the label list, so
    a label costs more than with `LabelVisits`."""

    pool: pa.Table
    k: int = 4
    encoder: TextEncoder = field(default_factory=lambda: MiniLMEncoder())

    def nearest(self, table: pa.Table, taxonomy: Taxonomy) -> tuple[dict[str, list[int]], ExampleIndex]:
        """(session_id -> row numbers of its `k` nearest examples in the index, nearest first; the index)."""
        index = ExampleIndex(taxonomy, self.pool, self.encoder)
        if self.k < 1 or not index.ids:
            return {}, index
        sims = index.similarities(table)
        out = {}
        for i, sid in enumerate(table.column("session_id").to_pylist()):
            order = np.argsort(-sims[i], kind="stable")[: self.k + 1]
            out[sid] = [int(j) for j in order if index.ids[j] != sid][: self.k]
        return out, index

    def blocks(self, table: pa.Table, taxonomy: Taxonomy, suffix: str) -> dict[str, str]:
        near, index = self.nearest(table, taxonomy)
        events = index.table.column("events").to_pylist()
        name_of = {lb.id: lb.name for lb in taxonomy.labels}
        text = [render_pages(evs, suffix=suffix, max_lines=4, max_chars=48) for evs in events]
        out = dict.fromkeys(table.column("session_id").to_pylist(), "")
        for sid, rows in near.items():
            out[sid] = "".join(demonstration(text[j], name_of[index.labels[j]]) for j in reversed(rows))
        return out


@dataclass(frozen=True)
class Both(Demonstrations):
    """`first`'s demonstrations, then `second`'s (fixed label visits, then each session's neighbours)."""

    first: Demonstrations
    second: Demonstrations

    def blocks(self, table: pa.Table, taxonomy: Taxonomy, suffix: str) -> dict[str, str]:
        a, b = self.first.blocks(table, taxonomy, suffix), self.second.blocks(table, taxonomy, suffix)
        return {sid: a[sid] + b[sid] for sid in a}


# -- candidates -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shortlist:
    """The names one session's answer may be, and how like the session each name's example visits are."""

    names: tuple[str, ...]  # in taxonomy order, `Other` last
    similarity: Mapping[str, float] = field(default_factory=dict)  # name -> cosine (NearestLabels); absent: none

    def bonus(self, weight: float) -> dict[str, float]:
        """name -> `weight` x its cosine, a name without one getting the mean of the others' (so the
        bonus neither helps nor hinders it); empty when nothing is known or `weight` is 0."""
        known = [self.similarity[n] for n in self.names if n in self.similarity]
        if not weight or not known:
            return {}
        fill = sum(known) / len(known)
        return {n: weight * self.similarity.get(n, fill) for n in self.names}


class Candidates(ABC):
    """Which label names the answer for each session may be."""

    @abstractmethod
    def shortlists(self, table: pa.Table, taxonomy: Taxonomy) -> dict[str, Shortlist]:
        """session_id -> the names the model chooses among (taxonomy order, `Other` always last), with the
        session's similarity to each name's example visits where the strategy measured one."""

    def choices(self, table: pa.Table, taxonomy: Taxonomy) -> dict[str, tuple[str, ...]]:
        """session_id -> the names alone."""
        return {sid: sl.names for sid, sl in self.shortlists(table, taxonomy).items()}


@dataclass(frozen=True)
class AllLabels(Candidates):
    """Every label of the taxonomy; no similarities, so a similarity weight changes nothing."""

    def shortlists(self, table: pa.Table, taxonomy: Taxonomy) -> dict[str, Shortlist]:
        return dict.fromkeys(table.column("session_id").to_pylist(), Shortlist(tuple(taxonomy.names)))


@dataclass
class NearestLabels(Candidates):
    """The `m` labels whose example visits in `pool` are most like the session (the mean cosine of MiniLM
    vectors of their words to the label's `nearest` example visits most like it, the session itself left
    out), and `Other`, with those cosines. Labels with no example in `pool` are always candidates (nothing
    says they are far) and have no cosine."""

    pool: pa.Table
    m: int = 3
    encoder: TextEncoder = field(default_factory=lambda: MiniLMEncoder())
    nearest: int = NEAREST_EXAMPLES

    def __post_init__(self) -> None:
        if self.m < 1 or self.nearest < 1:
            raise ValueError(f"m and nearest must be at least 1, not {self.m} and {self.nearest}")

    def shortlists(self, table: pa.Table, taxonomy: Taxonomy) -> dict[str, Shortlist]:
        index = ExampleIndex(taxonomy, self.pool, self.encoder)
        ids = table.column("session_id").to_pylist()
        sims = index.similarities(table) if index.ids else np.zeros((len(ids), 0))
        members = [lb for lb in taxonomy.labels if lb.id != OTHER_ID]
        cols = {lb.id: np.flatnonzero(np.asarray(index.labels) == lb.id) for lb in members}
        other = taxonomy.by_id(OTHER_ID).name
        out = {}
        for i, sid in enumerate(ids):
            mean: dict[int, float] = {}
            for pos, lb in enumerate(members):
                c = [j for j in cols[lb.id] if index.ids[j] != sid]
                if c:
                    mean[pos] = float(np.sort(sims[i, c])[::-1][: self.nearest].mean())
            nearest = sorted(mean, key=lambda pos: (-mean[pos], pos))[: self.m]
            keep = [pos for pos in range(len(members)) if pos not in mean or pos in nearest]
            names = (*(members[pos].name for pos in keep), other)
            out[sid] = Shortlist(names, {members[pos].name: mean[pos] for pos in keep if pos in mean})
        return out


ALL_LABELS = AllLabels()
LABEL_VISITS = LabelVisits()


# -- labelling --------------------------------------------------------------------------------------


def _labels_block(taxonomy: Taxonomy) -> str:
    return "\n".join(f"- {lb.name}: {lb.description}" for lb in taxonomy.labels)


def label_prompt(taxonomy: Taxonomy, visit_text: str, demonstrations: str = "") -> str:
    return prompt("label", labels=_labels_block(taxonomy), examples=demonstrations, session=visit_text)


def label_request(
    taxonomy: Taxonomy, visit_text: str, demonstrations: str = "", choices: Sequence[str] | None = None
) -> Request:
    """One labelling request; `choices` None: every label of the taxonomy."""
    names = tuple(choices) if choices is not None else tuple(taxonomy.names)
    return Request(label_prompt(taxonomy, visit_text, demonstrations), max_tokens=16, choices=names)


def _softmax(scores: Mapping[str, float]) -> dict[str, float]:
    m = max(scores.values())
    e = {k: math.exp(v - m) for k, v in scores.items()}
    z = sum(e.values())
    return {k: v / z for k, v in e.items()}


def decide(
    completion: Completion, prior: Mapping[str, float] | None, bonus: Mapping[str, float] | None = None
) -> tuple[str, float]:
    """(label name, confidence) from one restricted answer: choice scores less `prior`, plus `bonus`
    (`Shortlist.bonus`); see the module docstring."""
    if completion.choice_logprobs:
        scores = dict(completion.choice_logprobs)
        if prior:
            scores = {k: v - prior.get(k, 0.0) for k, v in scores.items()}
        if bonus:
            scores = {k: v + bonus.get(k, 0.0) for k, v in scores.items()}
        probs = _softmax(scores)
        best = max(sorted(probs), key=lambda k: probs[k])
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
    demonstrations: Demonstrations = LABEL_VISITS,
    candidates: Candidates = ALL_LABELS,
    calibrate: bool = True,
    similarity_weight: float = SIMILARITY_WEIGHT,
    step: str = STEP,
) -> pa.Table:
    """labels.parquet rows (schema.LABELS, source 'llm') for a sample of `sessions` (all when `sample` is
    None). `calibrate`: subtract each name's score on a content-free visit shown the same label list and,
    where they are the same for every session, the same demonstrations (scoring backends only).
    `similarity_weight`: add this times the session's cosine to each name's example visits, as
    `candidates` measured it (scoring backends only; 0, or candidates without similarities: the model's
    scores alone)."""
    if similarity_weight < 0:
        raise ValueError(f"similarity_weight must be >= 0, not {similarity_weight}")
    table = sample_sessions(sessions, sample, seed)
    events = table.column("events").to_pylist()
    suffix = site_suffix([e.get("page_title") for evs in events for e in evs]) or ""
    ids = table.column("session_id").to_pylist()
    texts = {sid: render_pages(evs, suffix=suffix) for sid, evs in zip(ids, events, strict=True)}
    shots = demonstrations.blocks(table, taxonomy, suffix)
    allowed = candidates.shortlists(table, taxonomy)
    prior: dict[str, float] | None = None
    if calibrate and ids:
        shared = {shots[s] for s in ids}
        ref_shots = shared.pop() if len(shared) == 1 else ""
        ref = llm.run_one(label_request(taxonomy, CONTENT_FREE, ref_shots), f"{step} (calibration)")
        prior = ref.choice_logprobs  # None for backends that cannot score every choice
    out = llm.run([label_request(taxonomy, texts[s], shots[s], allowed[s].names) for s in ids], step)
    names, confs = [], []
    for sid, c in zip(ids, out, strict=True):
        name, conf = decide(c, prior, allowed[sid].bonus(similarity_weight))
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
    labels = [lb for lb in taxonomy.labels if lb.id != OTHER_ID]
    if not labels or not texts:
        return {sid: (OTHER_ID, 0.0) for sid in texts}
    lv = enc.encode([f"{lb.name}: {lb.description}" for lb in labels])
    ids = list(texts)
    sv = enc.encode([texts[i] for i in ids])
    sims = sv @ lv.T
    best = sims.argmax(axis=1)
    out = {}
    for i, sid in enumerate(ids):
        cos = float(sims[i, best[i]])
        out[sid] = (OTHER_ID, cos) if cos < other_below else (labels[int(best[i])].id, cos)
    return out
