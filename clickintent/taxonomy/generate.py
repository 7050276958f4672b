"""Taxonomy generation from the sessions themselves, in two modes.

`cluster` (works with the embedded base model): vectors for a sample of sessions (the encoder's
embeddings.parquet when given, else all-MiniLM-L6-v2 vectors of each session's words or of its LLM
summary), clustered by spectral clustering of their 15-nearest-neighbour graph (`clusterer="spectral"`,
default; `"kmeans"` is the earlier method) with k the best cosine silhouette between half of `max_labels`
and `max_labels` (over all k the silhouette sometimes chose 5 clusters for 18 intents), clusters under
`min_share` folded into `other`; each label keeps up to `max_examples` example sessions (its
representatives, then other members at random). Each cluster is profiled from the data (its most
distinctive pages and titles, its searches, the site sections its sessions visit) and its sessions nearest
the centre are summarised. The LLM then names it, by default (`naming="choice"`) as a restricted choice
among the names the cluster's own titles, paths and searches offer, scored with the few-shot prompt
`prompts/name_cluster.txt`, and writes a one-line description by few-shot completion; a 270M base model
copies its few-shot examples when asked to write a name freely, a choice keeps every name grounded in the
data (`naming="free"` lets a capable model write it). Near-duplicate names are merged (same content
words, or name vectors closer than `merge_cosine`); labels are grouped into a few categories by
agglomerative clustering of the label centres, and each category is chosen the same way among the site
sections its sessions visit (`prompts/name_category.txt`).

`llm` (TnT-LLM, Wan et al. 2024, https://arxiv.org/abs/2403.12173; needs a capable instruction-following
server): summaries of the sample, a taxonomy generated from the first minibatch of summaries, updated with
each next minibatch, then reviewed once (`prompts/llm_*.txt`), each answer JSON restricted to a schema
where the server supports it and always validated here. Shares and example sessions come from the nearest
label description of each summary (MiniLM), an estimate that `taxonomy label` replaces with LLM labels.

Every LLM answer is validated before use (names: 1-6 words of letters; JSON: the exact structure) and
retried when it fails. Left out: human-in-the-loop review, more than two levels.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.manifold import spectral_embedding
from sklearn.metrics import silhouette_score
from sklearn.neighbors import kneighbors_graph

from clickintent.encoder.text import MiniLMEncoder, TextEncoder
from clickintent.llm.base import LLM, Completion, MalformedOutput, Request
from clickintent.taxonomy.label import nearest_description_labels
from clickintent.taxonomy.render import (
    digest_table,
    page_path,
    prompt,
    quote,
    render_table,
    sample_sessions,
    site_suffix,
)
from clickintent.taxonomy.summarize import few_shot_answers, grounded, summarize
from clickintent.taxonomy.taxonomy import OTHER_ID, Label, Taxonomy, other_label, slugify

log = logging.getLogger(__name__)

Mode = Literal["cluster", "llm"]
Vectors = Literal["auto", "embeddings", "text", "summaries"]
Naming = Literal["choice", "free"]
Clusterer = Literal["spectral", "kmeans"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9 &'/,+-]*$")
_STOP = {"a", "an", "the", "and", "or", "of", "for", "to", "in", "on", "with", "your", "my"}


@dataclass
class Generated:
    """A generated taxonomy and what generation learned about its own sample."""

    taxonomy: Taxonomy
    assignments: dict[str, str] = field(default_factory=dict)  # session_id -> label id (the sample)
    summaries: dict[str, str] = field(default_factory=dict)  # session_id -> summary, where made


# -- validation of LLM answers ----------------------------------------------------------------------


def clean_name(text: str, max_words: int = 6) -> str:
    """A label or category name from an answer's first line; raises `MalformedOutput` if it is not one."""
    name = text.strip().split("\n", 1)[0].strip().strip('"').strip().rstrip(".")
    if not name or not _NAME.match(name) or len(name) > 50 or len(name.split()) > max_words:
        raise MalformedOutput(f"not a short name: {name[:60]!r}")
    if name.lower() == "other":
        raise MalformedOutput("`Other` is reserved")
    return name[0].upper() + name[1:]


def parse_named_cluster(text: str) -> tuple[str, str]:
    """(name, description) from the continuation of `prompts/name_cluster.txt`."""
    lines = [ln.strip() for ln in text.strip().split("\n") if ln.strip()]
    if len(lines) < 2 or not lines[1].startswith("### Description:"):
        raise MalformedOutput(f"expected a name line and a description line: {text[:80]!r}")
    name = clean_name(lines[0])
    desc = lines[1].removeprefix("### Description:").strip()
    if len(desc.split()) < 3 or len(desc) > 240 or "###" in desc:
        raise MalformedOutput(f"not a one-line description: {desc[:80]!r}")
    return name, desc


def _check_named_cluster(request: Request, completion: Completion) -> None:
    parse_named_cluster(completion.text)


def _check_category(request: Request, completion: Completion) -> None:
    clean_name(completion.text, max_words=3)


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


# -- cluster mode ----------------------------------------------------------------------------------


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def choose_k(x: np.ndarray, k_max: int, seed: int = 0, k_min: int = 2) -> int:
    """The k in [k_min, k_max] with the best cosine silhouette (on at most 2,000 points)."""
    n = x.shape[0]
    k_max = min(k_max, n - 1)
    if k_max < k_min:
        return max(1, min(k_max, n))
    best_k, best_s = k_min, -2.0
    for k in range(k_min, k_max + 1):
        km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(x)
        s = silhouette_score(x, km.labels_, metric="cosine", sample_size=min(n, 2000), random_state=seed)
        if s > best_s:
            best_k, best_s = k, float(s)
    return best_k


def spectral_clusters(
    x: np.ndarray, k_max: int, seed: int = 0, k_min: int = 2, n_neighbors: int = 15, k: int | None = None
) -> np.ndarray:
    """Cluster ids from spectral clustering of the `n_neighbors` nearest-neighbour graph of unit vectors
    `x` (as scikit-learn's `SpectralClustering(affinity="nearest_neighbors")`, its embedding computed once
    for every k), with k the best cosine silhouette in [k_min, k_max] unless given. Under 10 x `n_neighbors`
    sessions the graph is too dense to say anything: k-means (k by silhouette over the same range).

    A graph follows the sessions' own neighbourhoods where k-means cuts straight lines between centres; on
    two development worlds it recovered the true intents better than k-means and than BERTopic
    (docs/BENCHMARKS.md, issue 5).
    """
    n = x.shape[0]
    k_max = max(1, min(k_max, n - 1))
    if n < 10 * n_neighbors:  # too few sessions for a sparse neighbour graph (15 of 16 is all): k-means
        k = k or choose_k(x, k_max, seed, min(k_min, k_max))
        return KMeans(n_clusters=max(1, min(k, n)), n_init=5, random_state=seed).fit(x).labels_
    ks = [min(k, n)] if k else list(range(min(k_min, k_max), k_max + 1))
    graph = kneighbors_graph(x, n_neighbors=n_neighbors, include_self=True)
    with warnings.catch_warnings():
        # Disconnected groups of sessions are clusters already; their embedding separates them.
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        maps = spectral_embedding(0.5 * (graph + graph.T), n_components=max(ks), random_state=seed, drop_first=False)

    def cut(kk: int) -> np.ndarray:
        return KMeans(n_clusters=kk, n_init=10, random_state=seed).fit(maps[:, :kk]).labels_

    if k:
        return cut(ks[0])
    best, best_s = np.zeros(n, int), -2.0
    for kk in ks:
        labels = cut(kk)
        if len(set(labels)) < 2:
            continue
        s = silhouette_score(x, labels, metric="cosine", sample_size=min(n, 2000), random_state=seed)
        if s > best_s:
            best, best_s = labels, float(s)
    return best


def cluster_vectors(
    x: np.ndarray, clusterer: Clusterer, max_labels: int, seed: int = 0, n_clusters: int | None = None
) -> np.ndarray:
    """Cluster ids of unit vectors `x`: `spectral` (k by silhouette between half of `max_labels` and
    `max_labels`) or `kmeans` (k by silhouette from 2), or `n_clusters` clusters when given."""
    n = x.shape[0]
    fixed_k = max(1, min(n_clusters, max_labels, n)) if n_clusters else None
    if clusterer == "spectral":
        return spectral_clusters(x, max_labels, seed, k_min=max(2, -(-max_labels // 2)), k=fixed_k)
    if clusterer == "kmeans":
        k = fixed_k or max(1, min(choose_k(x, max_labels, seed), max_labels, n))
        return KMeans(n_clusters=k, n_init=5, random_state=seed).fit(x).labels_
    raise ValueError(f"unknown clusterer {clusterer!r}; expected 'spectral' or 'kmeans'")


def _session_vectors(
    table: pa.Table,
    vectors: Vectors,
    embeddings: pa.Table | None,
    encoder: TextEncoder,
    llm: LLM,
) -> tuple[pa.Table, np.ndarray, dict[str, str]]:
    """(sessions kept, unit vectors, summaries made) for the chosen vector source."""
    if vectors == "auto":
        vectors = "embeddings" if embeddings is not None else "text"
    if vectors == "embeddings":
        if embeddings is None:
            raise ValueError("vectors='embeddings' needs an embeddings table")
        emb = dict(
            zip(
                embeddings.column("session_id").to_pylist(),
                embeddings.column("embedding").to_pylist(),
                strict=True,
            )
        )
        ids = table.column("session_id").to_pylist()
        keep = [i for i, sid in enumerate(ids) if sid in emb]
        if not keep:
            raise ValueError("no sampled session has an embedding (do the session ids match?)")
        table = table.take(keep)
        return table, _normalize(np.array([emb[s] for s in table.column("session_id").to_pylist()])), {}
    if vectors == "summaries":
        summaries = summarize(render_table(table), llm)
        ids = table.column("session_id").to_pylist()
        return table, _normalize(encoder.encode([summaries[s] for s in ids])), summaries
    digests = digest_table(table)
    return table, _normalize(encoder.encode([digests[s] for s in table.column("session_id").to_pylist()])), {}


@dataclass
class ClusterProfile:
    """What a cluster's sessions have in common, from the data alone: the input to naming it."""

    pages: list[tuple[str, str | None]]  # (path, title without the site name), most distinctive first
    searches: list[str]  # most frequent search queries
    sections: Counter[str]  # title sections ("Credit Cards") and first path segments, counted by session

    def block(self, summaries: Sequence[str]) -> str:
        """The cluster as the naming prompt shows it, every web string quoted as data."""
        pages = []
        for path, title in self.pages[:4]:
            parts = [quote(path, 60), quote(title, 60) if title else None]
            pages.append(" ".join(p for p in parts if p))
        searches = [q for q in (quote(x, 60) for x in self.searches) if q]
        lines = [
            "Typical pages: " + ("; ".join(pages) or "none"),
            "Searches: " + ("; ".join(searches) or "none"),
            "Visits:",
            *[f"- {x}" for x in summaries],
        ]
        return "\n".join(lines)

    def fallback_description(self) -> str:
        """A description from the data, for a cluster the LLM could not describe (ungrounded answers)."""
        titles = [t.split(" | ")[0] for _, t in self.pages if t][:3]
        return ("Visits to pages such as " + ", ".join(titles) + ".") if titles else "Visits with no page titles."

    def name_candidates(self, limit: int = 12) -> list[str]:
        """Label names the data itself offers: distinctive page titles and paths, then searches."""
        raw: list[str] = []
        for path, title in self.pages:
            if title:
                raw.append(title.split(" | ")[0])
            raw.append(_path_words(path, last=True))
        raw += self.searches
        return _distinct_names(raw, limit)


def _path_words(path: str, last: bool) -> str:
    """`/credit-cards/cash-back?x=1` -> `Cash back` (last segment) or `Credit cards` (first)."""
    segs = [x for x in urlsplit(path).path.split("/") if x and not any(ch.isdigit() for ch in x) and "{" not in x]
    if not segs:
        return ""
    return re.sub(r"[-_]+", " ", segs[-1] if last else segs[0]).strip().capitalize()


def _distinct_names(raw: Sequence[str], limit: int) -> list[str]:
    out: list[str] = []
    keys: set[frozenset[str]] = set()
    for text in raw:
        try:
            name = clean_name(text)
        except MalformedOutput:
            continue
        key = _name_key(name)
        if key and key not in keys:
            keys.add(key)
            out.append(name)
        if len(out) >= limit:
            break
    return out


def profile_cluster(
    events: list[list[dict[str, Any]]], members: np.ndarray, suffix: str = "", top: int = 6
) -> ClusterProfile:
    """Distinctive pages (share inside x log(share inside / share overall)), searches and sections."""
    n_all, n_in = len(events), max(1, int(members.sum()))
    overall: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    titles: dict[str, Counter[str]] = {}
    searches: Counter[str] = Counter()
    sections: Counter[str] = Counter()
    for evs, m in zip(events, members, strict=True):
        paths = {page_path(e["page"]) for e in evs if e.get("page")}
        overall.update(paths)
        if not m:
            continue
        inside.update(paths)
        searches.update({e["search_query"] for e in evs if e.get("search_query")})
        secs: set[str] = set()
        for e in evs:
            title = e.get("page_title")
            if e.get("page") and title:
                if suffix and title.endswith(" | " + suffix):
                    title = title[: -len(suffix) - 3]
                titles.setdefault(page_path(e["page"]), Counter())[title] += 1
                secs.update(t.strip() for t in title.split(" | ")[1:])
        secs.update(w for w in (_path_words(p, last=False) for p in paths) if w)
        sections.update(secs)
    scored = sorted(((c / n_in) * np.log((c / n_in) / (overall[p] / n_all)), p) for p, c in inside.items() if p != "/")[
        ::-1
    ]
    pages = []
    for _, path in scored[:top]:
        common = titles.get(path, Counter()).most_common(1)  # ties: first seen, in event order
        pages.append((path, common[0][0] if common else None))
    return ClusterProfile(pages, [q for q, _ in most_common(searches, 3)], sections)


def most_common(counts: Counter[str], n: int) -> list[tuple[str, int]]:
    """`Counter.most_common` with ties broken by the text, not by insertion order: these counters are fed
    from sets, whose order changes with each process's string hashing, and the order reaches the prompts
    (a cache-free rebuild of the same world once named a cluster differently)."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _name_key(name: str) -> frozenset[str]:
    words = {w.rstrip("s") for w in re.findall(r"[a-z0-9]+", name.lower())}
    return frozenset(words - _STOP)


def merge_duplicates(names: Sequence[str], encoder: TextEncoder, cosine: float) -> list[int]:
    """For each name, the index of the first name it duplicates (itself when none).

    Duplicates: the same content words (plurals folded), or name vectors with cosine >= `cosine`.
    """
    if not names:
        return []
    vecs = _normalize(encoder.encode(list(names)))
    keys = [_name_key(n) for n in names]
    root = list(range(len(names)))
    for j in range(len(names)):
        for i in range(j):
            if root[i] == i and (keys[i] == keys[j] or float(vecs[i] @ vecs[j]) >= cosine):
                root[j] = i
                break
    return root


def _check_description(request: Request, completion: Completion) -> None:
    clean_description(completion.text)


def clean_description(text: str) -> str:
    desc = text.strip().split("\n", 1)[0].strip()
    if len(desc.split()) < 3 or len(desc) > 240 or "###" in desc:
        raise MalformedOutput(f"not a one-line description: {desc[:80]!r}")
    return desc


def name_clusters(
    llm: LLM, profiles: Sequence[ClusterProfile], blocks: Sequence[str], naming: Naming
) -> list[tuple[str, str]]:
    """(name, description) per cluster.

    `choice` (for base models): the name is the LLM's restricted choice among the names the cluster's own
    pages and searches offer (`ClusterProfile.name_candidates`), then a few-shot description of it;
    `free`: one few-shot completion writes both, validated.
    """
    prompts = [prompt("name_cluster", cluster=b) for b in blocks]
    if naming == "free":
        reqs = [Request(p, max_tokens=64, stop=("\n\n", "### Cluster")) for p in prompts]
        return [parse_named_cluster(c.text) for c in llm.run(reqs, "cluster names", check=_check_named_cluster)]
    names: list[str | None] = []
    reqs, at = [], []
    for i, (p, prof) in enumerate(zip(prompts, profiles, strict=True)):
        cands = prof.name_candidates()
        if len(cands) == 1:
            names.append(cands[0])
            continue
        names.append(None)
        if cands:
            reqs.append(Request(p, max_tokens=16, choices=tuple(cands)))
            at.append(i)
    for i, c in zip(at, llm.run(reqs, "cluster names", check=None), strict=True):
        names[i] = c.text
    # A cluster whose pages offer no usable name (rare) gets one written freely, validated.
    free = [i for i, n in enumerate(names) if n is None]
    if free:
        reqs = [Request(prompts[i] + " ", max_tokens=16, stop=("\n",)) for i in free]
        for i, c in zip(free, llm.run(reqs, "cluster names (free)", check=_check_category), strict=True):
            names[i] = clean_name(c.text)
    final = [n or "" for n in names]
    reqs = [
        Request(f"{p} {n}\n### Description:", max_tokens=48, stop=("\n", "###"))
        for p, n in zip(prompts, final, strict=True)
    ]
    examples = few_shot_answers("name_cluster", "### Description: ")

    def accept(request: Request, completion: Completion) -> bool:
        try:
            desc = clean_description(completion.text)
        except MalformedOutput:
            return False
        return grounded(desc, request.prompt.rsplit("### Cluster\n", 1)[-1], examples)

    out, ok = llm.run_resampled(reqs, "cluster descriptions", accept, check=_check_description)
    descs = [
        clean_description(c.text) if good else prof.fallback_description()
        for c, good, prof in zip(out, ok, profiles, strict=True)
    ]
    return list(zip(final, descs, strict=True))


def name_categories(llm: LLM, groups: Sequence[tuple[list[str], Counter[str]]], naming: Naming) -> list[str]:
    """A category name per group of labels: a restricted choice among the sections its sessions visit
    (`choice`), or a few-shot completion (`free`, or when the sessions offer no section)."""
    out: list[str | None] = []
    reqs, at = [], []
    for i, (names, sections) in enumerate(groups):
        listed = "; ".join(q for q in (quote(nm, 60) for nm in names) if q)
        p = prompt("name_category", labels=listed)
        cands = _distinct_names([s for s, _ in most_common(sections, 8)], 6) if naming == "choice" else []
        out.append(cands[0] if len(cands) == 1 else None)
        if len(cands) > 1:
            reqs.append(Request(p, max_tokens=8, choices=tuple(cands)))
            at.append(i)
    for i, c in zip(at, llm.run(reqs, "category names"), strict=True):
        out[i] = c.text
    free = [i for i, n in enumerate(out) if n is None]
    if free:
        free_reqs = []
        for i in free:
            listed = "; ".join(q for q in (quote(nm, 60) for nm in groups[i][0]) if q)
            free_reqs.append(Request(prompt("name_category", labels=listed), max_tokens=8, stop=("\n",)))
        for i, c in zip(free, llm.run(free_reqs, "category names (free)", check=_check_category), strict=True):
            out[i] = clean_name(c.text, 3)
    return [n or "" for n in out]


def generate_cluster(
    sessions: pa.Table,
    llm: LLM,
    *,
    max_labels: int = 12,
    sample: int | None = 2000,
    seed: int = 0,
    embeddings: pa.Table | None = None,
    vectors: Vectors = "auto",
    text_encoder: TextEncoder | None = None,
    n_clusters: int | None = None,
    clusterer: Clusterer = "spectral",
    naming: Naming = "choice",
    representatives: int = 3,
    max_examples: int = 20,
    min_share: float = 0.01,
    max_categories: int = 6,
    merge_cosine: float = 0.9,
) -> Generated:
    """A taxonomy from clusters of session vectors, named by the LLM (see the module docstring)."""
    encoder = text_encoder or MiniLMEncoder()
    table = sample_sessions(sessions, sample, seed)
    table, x, summaries = _session_vectors(table, vectors, embeddings, encoder, llm)
    ids = table.column("session_id").to_pylist()
    events = table.column("events").to_pylist()
    suffix = site_suffix([e.get("page_title") for evs in events for e in evs]) or ""
    n = len(ids)
    assign = cluster_vectors(x, clusterer, max_labels, seed, n_clusters)
    k = int(assign.max()) + 1
    sizes = np.bincount(assign, minlength=k)
    kept = [c for c in range(k) if sizes[c] / n >= min_share and sizes[c] > 0]
    log.info("cluster mode: %d sessions, %s k=%d, %d clusters kept", n, clusterer, k, len(kept))

    # Representatives: the sessions nearest each centre, summarised (cached) for the naming prompt.
    centres = _normalize(np.stack([x[assign == c].mean(axis=0) if sizes[c] else x[0] for c in range(k)]))
    reps: dict[int, list[int]] = {}
    for c in kept:
        members = np.flatnonzero(assign == c)
        order = np.argsort(-(x[members] @ centres[c]))
        reps[c] = [int(i) for i in members[order[:representatives]]]
    texts = render_table(table.take([i for c in kept for i in reps[c]]), suffix=suffix)
    todo = {sid: t for sid, t in texts.items() if sid not in summaries}
    summaries.update(summarize(todo, llm, step="summaries (representatives)") if todo else {})

    profiles = [profile_cluster(events, assign == c, suffix) for c in kept]
    # Only summaries that are about their session go into the naming prompt (see summarize.grounded).
    copies = few_shot_answers("summarize", "### Intent: ")
    good = {sid: t for sid, t in summaries.items() if sid in texts and grounded(t, texts[sid], copies)}
    blocks = [
        prof.block([good[ids[i]] for i in reps[c] if ids[i] in good]) for c, prof in zip(kept, profiles, strict=True)
    ]
    named = name_clusters(llm, profiles, blocks, naming)

    # Merge near-duplicate names: the larger cluster keeps its name and description.
    by_size = sorted(range(len(kept)), key=lambda j: -sizes[kept[j]])
    root = merge_duplicates([named[j][0] for j in by_size], encoder, merge_cosine)
    groups: dict[int, list[int]] = {}
    for pos, j in enumerate(by_size):
        groups.setdefault(by_size[root[pos]], []).append(j)
    heads = list(groups)
    label_of_cluster = {kept[j]: g for g, head in enumerate(heads) for j in groups[head]}
    label_idx = np.array([label_of_cluster.get(int(c), -1) for c in assign])

    # Categories: agglomerate the label centres, then name each group of labels.
    label_centres = _normalize(np.stack([x[label_idx == g].mean(axis=0) for g in range(len(heads))]))
    n_cat = min(max_categories, max(1, round(np.sqrt(len(heads)))), len(heads))
    if n_cat > 1:
        cat_of = AgglomerativeClustering(n_clusters=n_cat, metric="cosine", linkage="average").fit_predict(
            label_centres
        )
    else:
        cat_of = np.zeros(len(heads), int)
    cat_groups = []
    for cat in range(n_cat):
        in_cat = [g for g in range(len(heads)) if cat_of[g] == cat]
        sections: Counter[str] = Counter()
        for g in in_cat:
            for j in groups[heads[g]]:
                sections.update(profiles[j].sections)
        cat_groups.append(([named[heads[g]][0] for g in in_cat], sections))
    cat_names = name_categories(llm, cat_groups, naming)

    labels: list[Label] = []
    rng = np.random.default_rng(seed)
    for g, head in enumerate(heads):
        name, desc = named[head]
        # The representatives first (the report and the fixed few-shot examples show those), then other
        # members drawn at random, so the examples span the cluster: the pool `taxonomy label --neighbours`
        # draws its demonstrations from (a spread pool labelled better than the members nearest the centre).
        examples = [ids[i] for j in groups[head] for i in reps[kept[j]]][:5]
        spread = [ids[i] for i in rng.permutation(np.flatnonzero(label_idx == g))]
        examples = (examples + [sid for sid in spread if sid not in examples])[:max_examples]
        share = float((label_idx == g).sum()) / n
        labels.append(Label(slugify(name), name, desc, cat_names[cat_of[g]], examples, share))
    others = np.flatnonzero(label_idx == -1)
    labels.append(other_label(len(others) / n, [ids[i] for i in others[:5]]))
    tax = Taxonomy.create(
        labels,
        mode="cluster",
        generator={
            "backend": llm.name,
            "model": llm.model,
            "sessions": n,
            "vectors": vectors if vectors != "auto" else ("embeddings" if embeddings is not None else "text"),
            "text_model": encoder.name,
            "k": k,
            "clusterer": clusterer,
            "naming": naming,
            "seed": seed,
            "max_labels": max_labels,
            "usage": {step: u.to_dict() for step, u in llm.usage.items()},
        },
    )
    id_of = [lb.id for lb in tax.labels]
    assignments = {sid: (id_of[label_idx[i]] if label_idx[i] >= 0 else OTHER_ID) for i, sid in enumerate(ids)}
    return Generated(tax, assignments, summaries)


# -- llm mode (TnT-LLM) ----------------------------------------------------------------------------


def _taxonomy_json(labels: list[Label]) -> str:
    cats: dict[str, list[dict[str, str]]] = {}
    for lb in labels:
        cats.setdefault(lb.category, []).append({"name": lb.name, "description": lb.description})
    return json.dumps({"categories": [{"name": c, "labels": v} for c, v in cats.items()]}, indent=1)


def generate_llm(
    sessions: pa.Table,
    llm: LLM,
    *,
    max_labels: int = 12,
    sample: int | None = 2000,
    seed: int = 0,
    batch_size: int = 100,
    max_categories: int = 5,
    text_encoder: TextEncoder | None = None,
) -> Generated:
    """A taxonomy written by the LLM from minibatches of summaries: generate, update, review."""
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
    nearest = nearest_description_labels(summaries, draft, text_encoder)
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


def build_taxonomy(sessions: pa.Table, llm: LLM, mode: Mode = "cluster", **kwargs: Any) -> Generated:
    """`generate_cluster` or `generate_llm`, by `mode`."""
    if mode == "cluster":
        return generate_cluster(sessions, llm, **kwargs)
    if mode == "llm":
        return generate_llm(sessions, llm, **kwargs)
    raise ValueError(f"unknown mode {mode!r}; expected 'cluster' or 'llm'")
