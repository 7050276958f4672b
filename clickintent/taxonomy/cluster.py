"""Clusterers for cluster-mode taxonomies: objects passed in (as BERTopic's `hdbscan_model`), not names.

A `Clusterer` asks its subclasses for one thing, `fit_predict(x)`: a cluster id per row of unit vectors
`x`. Both shipped ones take `k`, a fixed number of clusters or a `range` searched for the best cosine
silhouette (on at most 2,000 points):

- `SpectralClusterer` (the default): spectral clustering of the sessions' `n_neighbors`-nearest-neighbour
  graph (scikit-learn's `SpectralClustering(affinity="nearest_neighbors")`, its embedding computed once for
  every k). A graph follows the sessions' own neighbourhoods where k-means cuts straight lines between
  centres; on two development worlds it recovered the true intents better than k-means and than BERTopic
  (docs/BENCHMARKS.md, issue 5). Under 10 x `n_neighbors` sessions the graph is too dense to say anything
  (15 neighbours of 16 sessions is all of them), so it falls back to k-means.
- `KMeansClusterer`: k-means, the earlier method.

They are frozen dataclasses: `fit_predict` keeps nothing, so one instance may be shared. Left out:
density-based clusterers (HDBSCAN's outliers would need their own place beside `other`).
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import KMeans
from sklearn.manifold import spectral_embedding
from sklearn.metrics import silhouette_score
from sklearn.neighbors import kneighbors_graph

K = int | range


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def k_range(max_labels: int) -> range:
    """The k searched for a taxonomy of at most `max_labels` labels: from half of it to all of it (over all k
    the silhouette once chose 5 clusters for 18 intents; docs/BENCHMARKS.md, issue 5)."""
    return range(max(2, -(-max_labels // 2)), max(2, max_labels) + 1)


def _ks(k: K, x: np.ndarray) -> list[int]:
    """The k values to try on points `x`: each at least 1, below their number and at most the number of
    distinct points (sessions that read the same are one point)."""
    ks = [k] if isinstance(k, int) else list(k)
    distinct = len(np.unique(np.round(x, 5), axis=0)) if x.shape[0] else 0
    top = max(1, min(x.shape[0] - 1, distinct))
    return sorted({max(1, min(kk, top)) for kk in ks}) or [1]


def _silhouette(x: np.ndarray, labels: np.ndarray, seed: int) -> float:
    n = x.shape[0]
    if len(set(labels.tolist())) < 2:
        return -2.0
    return float(silhouette_score(x, labels, metric="cosine", sample_size=min(n, 2000), random_state=seed))


def _best(x: np.ndarray, ks: list[int], cut: Callable[[int], np.ndarray], seed: int) -> np.ndarray:
    """`cut(k)` for the one k, or for the k of `ks` with the best silhouette."""
    if len(ks) == 1:
        return cut(ks[0])
    best, best_s = np.zeros(x.shape[0], int), -3.0
    for kk in ks:
        labels = cut(kk)
        s = _silhouette(x, labels, seed)
        if s > best_s:
            best, best_s = labels, s
    return best


class Clusterer(ABC):
    """Cluster ids for unit vectors."""

    @abstractmethod
    def fit_predict(self, x: np.ndarray) -> np.ndarray:
        """An int cluster id (0..k-1) per row of `x`."""

    def describe(self) -> dict[str, object]:
        """What the taxonomy records about the clusterer (its generator block)."""
        return {"clusterer": type(self).__name__}


@dataclass(frozen=True)
class KMeansClusterer(Clusterer):
    k: K = field(default_factory=lambda: range(2, 13))  # fixed k, or a range searched by silhouette
    seed: int = 0
    n_init: int = 5

    def fit_predict(self, x: np.ndarray) -> np.ndarray:
        def cut(kk: int) -> np.ndarray:
            return KMeans(n_clusters=kk, n_init=self.n_init, random_state=self.seed).fit(x).labels_

        return _best(x, _ks(self.k, x), cut, self.seed)

    def describe(self) -> dict[str, object]:
        return {"clusterer": "kmeans", "k": _k_json(self.k), "seed": self.seed}


@dataclass(frozen=True)
class SpectralClusterer(Clusterer):
    k: K = field(default_factory=lambda: k_range(20))  # fixed k, or a range searched by silhouette
    n_neighbors: int = 15
    seed: int = 0

    def fit_predict(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        ks = _ks(self.k, x)
        if n < 10 * self.n_neighbors:  # too few sessions for a sparse neighbour graph: k-means
            return KMeansClusterer(self.k, self.seed).fit_predict(x)
        graph = kneighbors_graph(x, n_neighbors=self.n_neighbors, include_self=True)
        with warnings.catch_warnings():
            # Disconnected groups of sessions are clusters already; their embedding separates them.
            warnings.filterwarnings("ignore", message="Graph is not fully connected")
            maps = spectral_embedding(
                0.5 * (graph + graph.T), n_components=max(ks), random_state=self.seed, drop_first=False
            )

        def cut(kk: int) -> np.ndarray:
            return KMeans(n_clusters=kk, n_init=10, random_state=self.seed).fit(maps[:, :kk]).labels_

        return _best(x, ks, cut, self.seed)

    def describe(self) -> dict[str, object]:
        return {"clusterer": "spectral", "k": _k_json(self.k), "n_neighbors": self.n_neighbors, "seed": self.seed}


def _k_json(k: K) -> int | list[int]:
    return k if isinstance(k, int) else [k.start, k.stop - 1]
