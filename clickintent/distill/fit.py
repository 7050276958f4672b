"""Fit the distilled classifier on LLM-labelled sessions and measure what survives the distillation.

The LLM-labelled sessions are split by visitor (hash of the visitor id and the seed): 60% train the
weights, 20% validate (temperature and the `other` threshold), 20% are held out. Reported on the held-out
sessions: agreement with the LLM (accuracy, macro-F1, Cohen's kappa), expected calibration error before
and after temperature scaling, and, on a simulated world, accuracy against the true intents for the LLM
labels and for the distilled labels, both read through one many-to-one map (each taxonomy label -> the
true intent most of its *training* sessions have), so the drop is measured exactly as arXiv 2606.26277
states it: 1 - accuracy(distilled) / accuracy(LLM). Left out: cross-validation, class weights.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from clickintent.distill.classifier import IntentClassifier, expected_calibration_error


def visitor_split(visitors: list[str], seed: int) -> np.ndarray:
    """0 train, 1 validation, 2 test per row (60/20/20 by visitor)."""
    u = np.array([int(hashlib.md5(f"distill:{seed}:{v}".encode()).hexdigest()[:8], 16) / 2**32 for v in visitors])
    return np.where(u < 0.6, 0, np.where(u < 0.8, 1, 2))


def many_to_one(labels: list[str], truth: list[str | None]) -> dict[str, str]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for lb, t in zip(labels, truth, strict=True):
        if t is not None:
            counts[lb][t] += 1
    return {lb: c.most_common(1)[0][0] for lb, c in counts.items()}


def distill(
    embeddings: pa.Table,
    llm_labels: pa.Table,
    visitors: Mapping[str, str],
    *,
    true_intents: Mapping[str, str] | None = None,
    C: float = 1.0,
    seed: int = 0,
) -> tuple[IntentClassifier, dict[str, Any]]:
    """(fitted classifier, report) from embeddings and LLM labels joined on session id."""
    from sklearn.metrics import cohen_kappa_score, f1_score

    emb_ids = embeddings.column("session_id").to_pylist()
    row = {s: i for i, s in enumerate(emb_ids)}
    vecs = embeddings.column("embedding").combine_chunks()
    d = len(vecs[0]) if len(vecs) else 0
    mat = vecs.flatten().to_numpy().reshape(-1, d)
    ids = [s for s in llm_labels.column("session_id").to_pylist() if s in row]
    if len(ids) < 20:
        raise ValueError(f"only {len(ids)} LLM-labelled sessions have an embedding; distillation needs at least 20")
    label_of = dict(
        zip(llm_labels.column("session_id").to_pylist(), llm_labels.column("intent").to_pylist(), strict=True)
    )
    X = mat[[row[s] for s in ids]]
    y = [label_of[s] for s in ids]
    part = visitor_split([visitors.get(s, s) for s in ids], seed)
    tr, va, te = (np.flatnonzero(part == k) for k in (0, 1, 2))
    if len(te) == 0 or len(va) == 0:
        raise ValueError("too few visitors to hold out validation and test sessions")
    clf = IntentClassifier(C=C, seed=seed).fit(X[tr], [y[i] for i in tr], X[va], [y[i] for i in va])
    pred, _ = clf.predict(X[te])
    y_te = [y[i] for i in te]
    index = {c: i for i, c in enumerate(clf.classes_)}
    yi = np.array([index[c] for c in y_te])
    probs = clf.predict_proba(X[te])
    raw = IntentClassifier.softmax_logits(clf.logits(X[te]))
    report: dict[str, Any] = {
        "labelled_sessions": len(ids),
        "split": {"train": len(tr), "validation": len(va), "test": len(te)},
        "classes": clf.classes_,
        "temperature": clf.temperature_,
        "threshold": clf.threshold_,
        "agreement": {
            "accuracy": float(np.mean([p == t for p, t in zip(pred, y_te, strict=True)])),
            "macro_f1": float(f1_score(y_te, pred, average="macro", zero_division=0)),
            "cohen_kappa": float(cohen_kappa_score(y_te, pred)),
        },
        "ece": {
            "uncalibrated": expected_calibration_error(raw, yi),
            "calibrated": expected_calibration_error(probs, yi),
        },
        "other_share_test": float(np.mean([p == clf.other for p in pred])),
    }
    if true_intents:
        truth = [true_intents.get(s) for s in ids]
        mapping = many_to_one([y[i] for i in tr], [truth[i] for i in tr])
        scored = [(k, i) for k, i in enumerate(te) if truth[i] is not None]
        acc_llm = float(np.mean([mapping.get(y[i]) == truth[i] for _, i in scored])) if scored else 0.0
        acc_dis = float(np.mean([mapping.get(pred[k]) == truth[i] for k, i in scored])) if scored else 0.0
        report["truth"] = {
            "sessions": len(scored),
            "llm_accuracy": acc_llm,
            "distilled_accuracy": acc_dis,
            "drop": 1 - acc_dis / acc_llm if acc_llm else None,
            "mapping": mapping,
        }
    return clf, report
