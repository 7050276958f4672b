"""Taxonomy generation from the sessions themselves, in two modes: `cluster` (here) and `llm` (`tnt.py`).

`cluster` mode works with the embedded base model, because every part of the taxonomy comes from the data
and the model only makes the choices it makes well:

1. **Clusters**: unit vectors for a sample of sessions (machine-paced visits left out, `crawls.py`; MiniLM
   vectors of each session's words, TF-IDF vectors of its terms, both, or the encoder's embeddings when
   given) grouped by a `Clusterer` passed in
   (`cluster.py`; spectral by default). Clusters under `min_share` of the sample go to `other`, smallest
   first, while `other` stays within `max_other`.
2. **Site sections** (`phrases.SiteMap`: URL directories, title breadcrumbs, dotted category codes, the
   home page): a label's category is, among the sections at least `SECTION_SHARE` of its visits and half
   as many as its most visited section are in, the one most over its share of all visits (`top_section`),
   never a name the model makes up.
3. **Candidate names** (`phrases.ctfidf`, `phrases.mmr`): each cluster's distinctive phrases of its titles,
   URL tokens and searches, kept diverse.
4. **Names and descriptions** (`naming.py`): the LLM ranks the candidates (log-likelihood, calibrated); the
   description is a template from the label's phrases, section and searches (`llm_descriptions=True`: the
   LLM writes one validated sentence, the template its fallback); a deterministic fallback for the name.
5. **Merging**: clusters whose names share their content words (plurals folded) or whose name vectors are
   closer than `merge_cosine` become one label, so names are unique.

Every distinct text (session words, phrases, names) is encoded once per build (`DistinctEncoder`).
Each label keeps up to `max_examples` example sessions (the members nearest its centre, then others at
random: the pool `taxonomy label` draws neighbour demonstrations from) and its first `VISITS` written out.
A build writes a taxonomy for any table of sessions: no answer of the model can fail it (only a backend
that cannot be reached, or a call budget, can). Left out: human-in-the-loop review, more than two levels.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from clickintent.encoder.text import MiniLMEncoder, TextEncoder
from clickintent.llm.base import LLM
from clickintent.taxonomy.cluster import Clusterer, SpectralClusterer, normalize
from clickintent.taxonomy.crawls import human_rows
from clickintent.taxonomy.naming import COVERAGE_WEIGHT, Group, describe_groups, name_groups
from clickintent.taxonomy.phrases import HOME, STOP, Phrases, SiteMap, ctfidf, mmr, session_terms, term_vectors
from clickintent.taxonomy.render import digest_table, render_pages, sample_sessions, site_suffix
from clickintent.taxonomy.taxonomy import OTHER_ID, Generated, Label, Taxonomy, other_label, slugify
from clickintent.taxonomy.tnt import generate_llm

log = logging.getLogger(__name__)

Mode = Literal["cluster", "llm"]
Vectors = Literal["text", "terms", "text+terms"]
SITE = "Site"  # the category of a label whose visits are in no section (opaque page ids only)
# A label's category is the section most over its base share among those at least SECTION_SHARE of its
# visits and half as many as its most visited section are in (`top_section`). On development worlds 7 and
# 11 this passed the category check on 38 of 38 labels, the plurality 37 and a 0.25 floor alone 37
# (docs/TAXONOMY.md).
SECTION_SHARE = 0.25
PLURALITY_PART = 0.5
# A label is browsing (`is_browsing`, named `naming.BROWSING`) when at least SECTION_SHARE of its visits see
# the home page and no other section holds FOCUS of them. On development worlds 7, 11 and 13 every label
# with a majority intent of its own had one section holding 0.80 or more of its visits, the five whose
# majority was casual browsing 0.45 or less (docs/TAXONOMY.md, "Visits with no section").
FOCUS = 0.6
VISITS = 3  # example visits written out per label
BROAD = 0.25  # a part of a phrase is a name candidate when at least this share of the label's visits has it
DEFAULT_CLUSTERER = SpectralClusterer()
# A label's searches (shown to the model, quoted in its description) are those at least this many of its
# visits made: one visitor's search is not what the label is about ("first time home buyer" under
# application status).
SEARCH_VISITS = 2


class DistinctEncoder(TextEncoder):
    """`encoder`, asked once per distinct text over a whole build: sessions with the same words, phrases
    shown for both the clusters and the merged labels, and names are encoded once (issue 19's build time)."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder
        self.name, self.dim = encoder.name, encoder.dim
        self.seen: dict[str, np.ndarray] = {}
        self.n_encoded = 0  # distinct texts sent to `encoder`

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        new = list(dict.fromkeys(t for t in texts if t not in self.seen))
        if new:
            self.seen.update(zip(new, self.encoder.encode(new), strict=True))
            self.n_encoded += len(new)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.seen[t] for t in texts])


def session_vectors(
    table: pa.Table, embeddings: pa.Table | None, encoder: TextEncoder, vectors: Vectors = "text",
    terms: Sequence[Mapping[str, str]] | None = None,
) -> tuple[list[int], np.ndarray]:  # fmt: skip
    """(the rows of `table` kept, their unit vectors): rows of `embeddings` by session id when given
    (sessions without one are left out), else by `vectors`: `encoder` vectors of each session's words
    (`session_digest`, "text"), TF-IDF vectors of its terms ("terms", `phrases.term_vectors`; `terms`:
    each row's `session_terms` when the caller has them), or both side by side, each of unit length
    ("text+terms")."""
    ids = table.column("session_id").to_pylist()
    if embeddings is None:
        parts = []
        if vectors in ("text", "text+terms"):
            digests = digest_table(table)
            parts.append(normalize(encoder.encode([digests[s] for s in ids])))
        if vectors in ("terms", "text+terms"):
            parts.append(term_vectors(terms if terms is not None else table_terms(table)[1]))
        return list(range(len(ids))), normalize(np.hstack(parts))
    emb = dict(
        zip(embeddings.column("session_id").to_pylist(), embeddings.column("embedding").to_pylist(), strict=True)
    )
    keep = [i for i, sid in enumerate(ids) if sid in emb]
    if not keep:
        raise ValueError("no sampled session has an embedding (do the session ids match?)")
    return keep, normalize(np.array([emb[ids[i]] for i in keep]))


def table_terms(table: pa.Table) -> tuple[str, list[dict[str, str]]]:
    """(the site's name in titles, each row's `session_terms`) of a SESSIONS table."""
    return events_terms(table.column("events").to_pylist())


def events_terms(events: Sequence[Sequence[Mapping[str, Any]]]) -> tuple[str, list[dict[str, str]]]:
    """(the site's name in titles, each visit's `session_terms`) of visits given as lists of events."""
    suffix = site_suffix([e.get("page_title") for evs in events for e in evs]) or ""
    return suffix, [session_terms(evs, suffix) for evs in events]


def keep_clusters(sizes: np.ndarray, min_share: float, max_other: float) -> list[int]:
    """Cluster ids that become labels: all but those under `min_share`, which go to `other` smallest first
    for as long as `other` stays within `max_other` of the sessions."""
    n = max(1, int(sizes.sum()))
    small = sorted((c for c in range(len(sizes)) if sizes[c] and sizes[c] / n < min_share), key=lambda c: sizes[c])
    dropped, other = set(), 0
    for c in small:
        if (other + sizes[c]) / n > max_other:
            break
        dropped.add(c)
        other += sizes[c]
    return [c for c in range(len(sizes)) if sizes[c] and c not in dropped]


def section_shares(sections: Sequence[set[str]], rows: Iterable[int]) -> dict[str, float]:
    """section -> share of the sessions `rows` (indices into `sections`) that visit it."""
    rows = list(rows)
    counts = Counter(s for i in rows for s in sections[i])
    return {s: c / max(1, len(rows)) for s, c in counts.items()}


def top_section(shares: dict[str, float], base: dict[str, float]) -> str | None:
    """A label's section: among the sections at least `SECTION_SHARE` of its visits are in and at least
    `PLURALITY_PART` of its most visited section's share (that one always qualifies), the one most over
    its share of all visits (lift = `shares` / `base`), so that a section nearly every visit passes
    through (the home page) does not win every label. Ties go to the larger share, then the name."""
    if not shares:
        return None
    top = max(shares.values())
    ok = [s for s, v in shares.items() if v >= min(top, max(SECTION_SHARE, PLURALITY_PART * top))]
    return min(ok, key=lambda s: (-shares[s] / (base.get(s) or 1.0), -shares[s], s))


def is_browsing(shares: dict[str, float]) -> bool:
    """Visits with no section in focus: the home page is among their sections (`SECTION_SHARE` of them or
    more) and no other section holds `FOCUS` of them. A site without a home page in its pages (opaque
    product ids) has no browsing label: its clusters are told apart by their phrases alone."""
    focus = max((v for s, v in shares.items() if s != HOME), default=0.0)
    return shares.get(HOME, 0.0) >= SECTION_SHARE and focus < FOCUS


def _groups(
    phrases: Phrases, members: list[np.ndarray], sections: list[set[str]], searches: list[list[str]],
    encoder: TextEncoder, n_candidates: int = 8,
) -> list[Group]:  # fmt: skip
    """A naming `Group` per label: its section (`top_section`), its best phrases kept diverse by MMR, its
    commonest searches (made by at least `SEARCH_VISITS` of its visits)."""
    base = section_shares(sections, range(len(sections)))
    out = []
    for g, mem in enumerate(members):
        shares = section_shares(sections, mem)
        section = top_section(shares, base)
        top = phrases.top(g, 20, broad=BROAD)
        if top:
            rel = np.array([phrases.weights[g][t.lower()] for t in top])
            picked = mmr(normalize(encoder.encode(top)), rel / rel.max(), n_candidates, diversity=0.3)
            top = [top[i] for i in sorted(picked)]  # best first: `top` is sorted by weight
        found = Counter(q for i in mem for q in searches[i])
        common = [q for q, c in sorted(found.items(), key=lambda kv: (-kv[1], kv[0])) if c >= SEARCH_VISITS]
        out.append(Group(section, [(t, phrases.share[g][t.lower()]) for t in top], common[:3], is_browsing(shares)))
    return out


def _name_key(name: str) -> frozenset[str]:
    words = {w.rstrip("s") for w in re.findall(r"[^\W_]+", name.lower())}
    return frozenset(words - STOP) or frozenset(words)


def merge_duplicates(names: Sequence[str], encoder: TextEncoder, cosine: float) -> list[int]:
    """For each name, the index of the first name it duplicates (itself when none): the same content
    words (plurals folded), or name vectors with cosine >= `cosine`."""
    if not names:
        return []
    vecs = normalize(encoder.encode(list(names)))
    keys = [_name_key(n) for n in names]
    root = list(range(len(names)))
    for j in range(len(names)):
        for i in range(j):
            if root[i] == i and (keys[i] == keys[j] or float(vecs[i] @ vecs[j]) >= cosine):
                root[j] = i
                break
    return root


def generate_cluster(
    sessions: pa.Table,
    llm: LLM,
    *,
    clusterer: Clusterer = DEFAULT_CLUSTERER,
    embeddings: pa.Table | None = None,
    vectors: Vectors = "text",
    text_encoder: TextEncoder | None = None,
    sample: int | None = 2000,
    seed: int = 0,
    min_share: float = 0.01,
    max_other: float = 0.05,
    merge_cosine: float = 0.9,
    max_examples: int = 20,
    free_names: bool = False,
    llm_descriptions: bool = False,
    coverage_weight: float = COVERAGE_WEIGHT,
    keep_crawls: bool = False,
) -> Generated:
    """A taxonomy from clusters of session vectors, grounded in the site (see the module docstring).

    `embeddings`: cluster these vectors (by session id); else `vectors`: MiniLM vectors of the sessions'
    words ("text"; `text_encoder`, MiniLM when None, also makes the phrase vectors), TF-IDF vectors of
    their terms ("terms") or both ("text+terms"); `embeddings` with another `vectors` is an error.
    `free_names`: the model writes each name (a capable model) instead of choosing one of the cluster's
    phrases. `llm_descriptions`: the model writes each description (validated, the template when it fails)
    instead of the grounded template (`Group.template_description`; the default: the 270M model's sentences
    were slow and often off the group).
    `coverage_weight`: how much a name candidate's share of its cluster's visits counts (`name_groups`).
    `keep_crawls`: cluster machine-paced visits too (`crawls.py`; by default the sample leaves them out).
    """
    if embeddings is not None and vectors != "text":
        raise ValueError(f"vectors={vectors!r} clusters the sessions' own words or terms; pass embeddings=None")
    encoder = DistinctEncoder(text_encoder or MiniLMEncoder())
    table = sample_sessions(sessions, sample, seed)
    events = table.column("events").to_pylist()  # read once: crawls, terms, sections and example visits
    rows = list(range(table.num_rows)) if keep_crawls else human_rows(events)
    crawls = table.num_rows - len(rows)
    if crawls:
        table, events = table.take(rows), [events[i] for i in rows]
    suffix, terms = events_terms(events)  # what names the clusters, and what "terms" vectors cluster
    keep, x = session_vectors(table, embeddings, encoder, vectors, terms)
    if len(keep) < table.num_rows:
        table, terms, events = table.take(keep), [terms[i] for i in keep], [events[i] for i in keep]
    ids = table.column("session_id").to_pylist()
    platforms = table.column("platform").to_pylist() if "platform" in table.column_names else [None] * len(ids)
    n = len(ids)
    if n == 0:
        raise ValueError("no sessions to build a taxonomy from")
    assign = clusterer.fit_predict(x)
    sizes = np.bincount(assign, minlength=int(assign.max()) + 1)
    kept = keep_clusters(sizes, min_share, max_other)
    log.info("cluster mode: %d sessions (%d machine-paced left out), %d clusters, %d kept", n, crawls, len(sizes),
             len(kept))  # fmt: skip

    site = SiteMap.learn(events, suffix)
    sections = [site.sections(evs) for evs in events]
    searches = [sorted({str(e["search_query"]) for e in evs if e.get("search_query")}) for evs in events]

    def groups_of(label_idx: np.ndarray, k: int) -> list[Group]:
        members = [np.flatnonzero(label_idx == g) for g in range(k)]
        return _groups(ctfidf(terms, label_idx, k), members, sections, searches, encoder)

    cluster_idx = np.array([kept.index(c) if c in kept else -1 for c in assign])
    names = name_groups(llm, groups_of(cluster_idx, len(kept)), free=free_names, coverage_weight=coverage_weight)
    # Merge near-duplicate names: the larger cluster's name stands for the merged label.
    by_size = sorted(range(len(kept)), key=lambda j: (-sizes[kept[j]], j))
    root = merge_duplicates([names[j] for j in by_size], encoder, merge_cosine)
    heads = sorted({by_size[root[pos]] for pos in range(len(by_size))}, key=lambda j: (-sizes[kept[j]], j))
    label_of_cluster = {j: heads.index(by_size[root[pos]]) for pos, j in enumerate(by_size)}
    label_idx = np.array([label_of_cluster[j] if j >= 0 else -1 for j in cluster_idx])
    groups = groups_of(label_idx, len(heads))
    head_names = [names[j] for j in heads]
    descriptions = (
        describe_groups(llm, groups, head_names)
        if llm_descriptions
        else [grp.template_description(nm) for grp, nm in zip(groups, head_names, strict=True)]
    )

    rng = np.random.default_rng(seed)
    labels: list[Label] = []
    for g, head in enumerate(heads):
        members = np.flatnonzero(label_idx == g)
        centre = normalize(x[members].mean(axis=0, keepdims=True))[0]
        near = members[np.argsort(-(x[members] @ centre), kind="stable")[:VISITS]]
        spread = [i for i in rng.permutation(members) if i not in set(near)]
        examples = [int(i) for i in [*near, *spread][:max_examples]]
        visits = [render_pages(events[i], suffix=suffix) for i in examples[:VISITS]]
        category = groups[g].section or SITE
        labels.append(Label(slugify(names[head]), names[head], descriptions[g], category,
                            [ids[i] for i in examples], len(members) / n, visits))  # fmt: skip
    others = np.flatnonzero(label_idx == -1)
    other = other_label(len(others) / n, [ids[i] for i in others[:5]])
    other.visits = [render_pages(events[i], suffix=suffix) for i in others[:VISITS]]
    labels.append(other)
    tax = Taxonomy.create(
        labels,
        mode="cluster",
        generator={
            "backend": llm.name,
            "model": llm.model,
            "sessions": n,
            "crawls_left_out": crawls,
            "platforms": sorted({p for p in platforms if p}),
            "vectors": "embeddings" if embeddings is not None else vectors,
            "text_model": encoder.name,
            "clusters": len(sizes),
            **clusterer.describe(),
            "names": "free" if free_names else "choice",
            "descriptions": "llm" if llm_descriptions else "template",
            "seed": seed,
            "usage": {step: u.to_dict() for step, u in llm.usage.items()},
        },
    )
    id_of = [lb.id for lb in tax.labels]
    assignments = {sid: (id_of[label_idx[i]] if label_idx[i] >= 0 else OTHER_ID) for i, sid in enumerate(ids)}
    return Generated(tax, assignments)


def build_taxonomy(sessions: pa.Table, llm: LLM, mode: Mode = "cluster", **kwargs: Any) -> Generated:
    """`generate_cluster` or the `llm` mode's `tnt.generate_llm`, by `mode`."""
    if mode == "cluster":
        return generate_cluster(sessions, llm, **kwargs)
    if mode == "llm":
        return generate_llm(sessions, llm, **kwargs)
    raise ValueError(f"unknown mode {mode!r}; expected 'cluster' or 'llm'")
