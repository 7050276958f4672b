"""How well a labelling (clusters, taxonomy labels) recovers known classes: NMI, ARI and many-to-one accuracy.

Used by the taxonomy benchmarks against the simulator's true intents. All three ignore what the labels are
called: NMI (normalized mutual information, arithmetic mean normaliser, as scikit-learn's default) and ARI
(adjusted Rand index) compare the partitions; many-to-one maps each predicted label to the true class most
common among its rows and counts the rows it gets right, so it rewards splitting a class (it is 1.0 when
every row has its own label) and is read beside NMI and the number of labels used.

Left out: confidence intervals (the benchmarks bootstrap by visitor themselves), label names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ClusterScores:
    nmi: float  # normalized mutual information, 0 (independent) to 1 (the same partition)
    ari: float  # adjusted Rand index, ~0 for a random labelling, 1 for the same partition
    many_to_one: float  # accuracy after mapping each label to its most common true class
    labels_used: int  # distinct predicted labels

    def as_dict(self, digits: int = 4) -> dict[str, float | int]:
        """The scores rounded to `digits` (for a results JSON)."""
        return {k: v if isinstance(v, int) else round(v, digits) for k, v in asdict(self).items()}


def many_to_one(pred: Sequence[str], truth: Sequence[str]) -> float:
    """Accuracy when each predicted label is mapped to the true class most common among its rows (0 when empty)."""
    if len(pred) != len(truth):
        raise ValueError(f"{len(pred)} predicted labels for {len(truth)} true ones")
    by: dict[str, Counter[str]] = {}
    for p, t in zip(pred, truth, strict=True):
        by.setdefault(p, Counter())[t] += 1
    return sum(c.most_common(1)[0][1] for c in by.values()) / max(1, len(pred))


def cluster_scores(pred: Sequence[str], truth: Sequence[str]) -> ClusterScores:
    """NMI, ARI and many-to-one of the labelling `pred` against the true classes `truth` (same rows, same order)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    m2o = many_to_one(pred, truth)  # checks the lengths first
    return ClusterScores(
        nmi=float(normalized_mutual_info_score(truth, pred)),
        ari=float(adjusted_rand_score(truth, pred)),
        many_to_one=m2o,
        labels_used=len(set(pred)),
    )
