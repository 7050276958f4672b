"""Feature blocks for the downstream tasks: the production baseline and one block per web-session signal.

Baseline (what a bank's app already knows): every column of a customers table, encoded generically:
numbers as they are (log1p for counts), strings one-hot, lists of strings multi-hot; id columns skipped.
Web blocks, one row per web session (zeros plus a `missing` flag where a session has no value):
- `embedding`: the session embedding;
- `llm`: one-hot of the LLM label (only the labelled sample has one);
- `distilled`: one-hot of the distilled label;
- `oracle`: one-hot of the simulated true intent (simulation only);
- `pages`: the session-content reference, a TF-IDF bag of the visit's pages (page ids), its vocabulary and
  weights fitted on the learning visits only (docs/EVALUATION.md).
Dense blocks (embeddings, the page bag) can be reduced to their principal components (`principal_components`).
Left out: text of the labels, label confidences, sequences of several sessions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

ID_COLUMNS = {"customer_id", "person_id", "app_visitor_id", "visitor_id"}


@dataclass
class Block:
    """[S, d] features for the web sessions in `WebSessions.ids` order, and what the columns mean."""

    name: str
    values: np.ndarray
    columns: list[str]
    coverage: float  # share of sessions with a value


@dataclass
class WebSessions:
    ids: np.ndarray  # [S] session ids
    visitor: np.ndarray  # [S] visitor ids
    customer: np.ndarray  # [S] customer id from a login in the session, or ""
    start: np.ndarray  # [S] int64 µs
    end: np.ndarray  # [S] int64 µs
    device: np.ndarray  # [S] first event's device or ""
    blocks: dict[str, Block] = field(default_factory=dict)

    @property
    def index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.ids)}


def web_sessions(sessions: pa.Table) -> WebSessions:
    """The web sessions of a SESSIONS table (app sessions are the outcome side, never a feature)."""
    t = sessions.filter(pa.compute.equal(sessions.column("platform"), "web"))
    events = t.column("events").combine_chunks() if t.num_rows else pa.array([], t.schema.field("events").type)
    has = pa.compute.greater(pa.compute.list_value_length(events), 0)
    first = pa.compute.list_element(pa.compute.if_else(has, events, pa.scalar(None, events.type)), 0)
    first_device = first.field("device").to_pylist() if len(first) else []
    return WebSessions(
        ids=np.array(t.column("session_id").to_pylist(), dtype=object),
        visitor=np.array(t.column("visitor_id").to_pylist(), dtype=object),
        customer=np.array([c or "" for c in t.column("customer_id").to_pylist()], dtype=object),
        start=t.column("start").cast(pa.int64()).to_numpy(),
        end=t.column("end").cast(pa.int64()).to_numpy(),
        device=np.array([d or "" for d in first_device], dtype=object),
    )


def one_hot_block(name: str, web: WebSessions, values: dict[str, str], classes: list[str] | None = None) -> Block:
    """One-hot of a categorical value per session id (`values`), plus a `missing` column."""
    classes = classes or sorted(set(values.values()))
    col = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(web.ids), len(classes) + 1), np.float32)
    hit = 0
    for i, sid in enumerate(web.ids):
        v = values.get(sid)
        if v is None or v not in col:
            out[i, -1] = 1.0
        else:
            out[i, col[v]] = 1.0
            hit += 1
    return Block(name, out, [f"{name}={c}" for c in classes] + [f"{name} missing"], hit / max(1, len(web.ids)))


def embedding_block(web: WebSessions, embeddings: pa.Table) -> Block:
    ids = embeddings.column("session_id").to_pylist()
    vecs = embeddings.column("embedding").combine_chunks()
    d = len(vecs[0]) if len(vecs) else 0
    mat = vecs.flatten().to_numpy().reshape(-1, d) if d else np.zeros((0, 0), np.float32)
    row = {s: i for i, s in enumerate(ids)}
    out = np.zeros((len(web.ids), d + 1), np.float32)
    hit = 0
    for i, sid in enumerate(web.ids):
        j = row.get(sid)
        if j is None:
            out[i, -1] = 1.0
        else:
            out[i, :d] = mat[j]
            hit += 1
    return Block("embedding", out, [f"e{k}" for k in range(d)] + ["embedding missing"], hit / max(1, len(web.ids)))


def page_bag_block(web: WebSessions, sessions: pa.Table, fit_ids: set[str], max_pages: int = 512) -> Block:
    """TF-IDF of each web session's page ids; the vocabulary (the `max_pages` pages in most of the fitted
    sessions) and the idf weights come from the sessions in `fit_ids` only."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfTransformer

    t = sessions.filter(pa.compute.is_in(sessions.column("session_id"), pa.array(list(web.ids), pa.string())))
    row_of = {sid: i for i, sid in enumerate(web.ids)}
    rows = np.array([row_of[sid] for sid in t.column("session_id").to_pylist()], np.int64)
    events = t.column("events").combine_chunks() if t.num_rows else pa.array([], t.schema.field("events").type)
    pages = pa.compute.fill_null(events.flatten().field("page"), "").dictionary_encode()
    lengths = pa.compute.list_value_length(events).to_numpy(zero_copy_only=False)
    counts = sparse.csr_matrix((np.ones(len(pages)), (np.repeat(rows, lengths), pages.indices.to_numpy())),
                               shape=(len(web.ids), len(pages.dictionary)))  # fmt: skip
    fit = np.array([sid in fit_ids for sid in web.ids])
    fitted = counts[fit] if fit.any() else counts
    vocab = np.argsort(-np.asarray((fitted > 0).sum(axis=0)).ravel(), kind="stable")[:max_pages]
    tfidf = TfidfTransformer(sublinear_tf=True).fit(fitted[:, vocab])
    values = np.asarray(tfidf.transform(counts[:, vocab]).todense(), np.float32)
    names = [f"page={p}" for p in np.asarray(pages.dictionary.to_pylist(), dtype=object)[vocab]]
    return Block("pages", values, names, float((lengths > 0).mean()) if len(lengths) else 0.0)


def principal_components(block: Block, fit: np.ndarray, k: int) -> Block:
    """The block projected on its first `k` principal components, fitted on the rows `fit` (the learning
    visits), plus its `missing` flag if it has one. A dense block of many columns costs a multinomial model
    columns x classes weights; on development worlds 32 components gained more of the tile ceiling with the
    same training rows (docs/EVALUATION.md) and lost nothing on conversion."""
    from sklearn.decomposition import PCA

    values, names = block.values, block.columns
    flag = names[-1].endswith("missing") if names else False
    x = values[:, :-1] if flag else values
    if x.shape[1] <= k or not fit.any():
        return block
    z = PCA(k, random_state=0).fit(x[fit]).transform(x).astype(np.float32)
    cols = [f"{block.name} pc{i + 1}" for i in range(k)]
    if flag:
        z, cols = np.hstack([z, values[:, -1:]]), [*cols, names[-1]]
    return Block(block.name, z, cols, block.coverage)


def labels_dict(labels: pa.Table) -> dict[str, str]:
    return dict(zip(labels.column("session_id").to_pylist(), labels.column("intent").to_pylist(), strict=True))


@dataclass
class CustomerFeatures:
    index: dict[str, int]
    values: np.ndarray  # [C, d]
    columns: list[str]

    def rows(self, customer_ids: np.ndarray) -> np.ndarray:
        """[N, d+1]: the customer's features, or zeros and an `unknown customer` flag."""
        out = np.zeros((len(customer_ids), self.values.shape[1] + 1), np.float32)
        for i, c in enumerate(customer_ids):
            j = self.index.get(c) if c else None
            if j is None:
                out[i, -1] = 1.0
            else:
                out[i, :-1] = self.values[j]
        return out


def customer_features(customers: pa.Table, max_categories: int = 30) -> CustomerFeatures:
    """Encode every non-id column of a customers table (see the module docstring)."""
    cols: list[np.ndarray] = []
    names: list[str] = []
    for name in customers.column_names:
        if name in ID_COLUMNS:
            continue
        arr = customers.column(name)
        typ = arr.type
        values = arr.to_pylist()
        if pa.types.is_boolean(typ) or pa.types.is_integer(typ) or pa.types.is_floating(typ):
            x = np.array([0.0 if v is None else float(v) for v in values], np.float32)
            if pa.types.is_integer(typ) and x.min(initial=0) >= 0 and x.max(initial=0) > 50:
                x = np.log1p(x)
            cols.append(x[:, None])
            names.append(name)
        elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
            cats = [c for c, _ in _top(values, max_categories)]
            cols.append(np.array([[v == c for c in cats] for v in values], np.float32).reshape(len(values), -1))
            names += [f"{name}={c}" for c in cats]
        elif pa.types.is_list(typ) or pa.types.is_large_list(typ):
            flat = [x for v in values for x in (v or [])]
            cats = [c for c, _ in _top(flat, max_categories)]
            cols.append(np.array([[c in (v or []) for c in cats] for v in values], np.float32).reshape(len(values), -1))
            names += [f"{name} has {c}" for c in cats]
    ids = customers.column("customer_id").to_pylist()
    mat = np.hstack(cols) if cols else np.zeros((len(ids), 0), np.float32)
    return CustomerFeatures({c: i for i, c in enumerate(ids)}, mat.astype(np.float32), names)


def _top(values: list[object], k: int) -> list[tuple[object, int]]:
    from collections import Counter

    return Counter(v for v in values if v is not None).most_common(k)
