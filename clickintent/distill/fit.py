"""Fit the distilled classifier on LLM-labelled sessions and measure what survives the distillation.

The LLM-labelled sessions are split by visitor (hash of the visitor id and the seed): 60% train the
weights, 20% validate (the L2 strength unless given, the temperature and the `other` threshold), 20% are
held out. The classifier reads `inputs` (distill/features.py): the embedding, or the embedding followed by
the session's mean page-text vector (`text_means`, computed by the caller from the sessions' events with
the bundle's featurizer: `features.text_means_by_session`). Reported on the held-out sessions: agreement
with the LLM (accuracy, macro-F1, Cohen's kappa), and expected calibration error before and after
temperature scaling.

On a simulated world, accuracy against the true intents for the LLM labels and for the distilled labels,
both read through one many-to-one map (each taxonomy label -> the true intent most of its *training*
sessions have), so the drop is measured as arXiv 2606.26277 states it: 1 - accuracy(distilled) /
accuracy(LLM). A 20% hold-out of a few hundred LLM labels leaves a few dozen sessions with a true intent,
too few to read a drop from, so this comparison is cross-fitted: the labelled sessions are cut into
`TRUTH_FOLDS` folds by visitor, and each fold is scored with a classifier (and a map) fitted on the other
folds, so every labelled session with a true intent counts once, never seen by the model that labels it.
Returns a typed `DistillReport` (report.py); its cost part is filled in by `DistillReport.with_cost`.
Left out: class weights.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from clickintent.distill.classifier import IntentClassifier, expected_calibration_error, reliability
from clickintent.distill.features import EMBEDDING, Inputs, check_inputs, classifier_input
from clickintent.distill.report import Agreement, Calibration, DistillReport, ReliabilityBin, Split, TruthScore


def visitor_split(visitors: list[str], seed: int) -> np.ndarray:
    """0 train, 1 validation, 2 test per row (60/20/20 by visitor)."""
    u = np.array([int(hashlib.md5(f"distill:{seed}:{v}".encode()).hexdigest()[:8], 16) / 2**32 for v in visitors])
    return np.where(u < 0.6, 0, np.where(u < 0.8, 1, 2))


C_GRID = (0.1, 1.0, 10.0, 100.0)
TRUTH_FOLDS = 5


def fold_of(visitors: list[str], seed: int, folds: int) -> np.ndarray:
    """Fold number per row, by visitor hash (independent of `visitor_split`'s hash)."""
    return np.array([int(hashlib.md5(f"fold:{seed}:{v}".encode()).hexdigest()[:8], 16) % folds for v in visitors])


def fit_classifier(
    X: np.ndarray, y: list[str], tr: np.ndarray, va: np.ndarray, C: float | None, seed: int, *,
    inputs: Inputs = EMBEDDING,
) -> IntentClassifier:
    """Fit on rows `tr`; with `C` None, the C of `C_GRID` with the best agreement on rows `va` (ties: the
    smaller C). Temperature and threshold come from `va` either way."""
    y_tr, y_va = [y[i] for i in tr], [y[i] for i in va]
    if C is None:
        scores = []
        for c in C_GRID:
            pred, _ = IntentClassifier(C=c, seed=seed, inputs=inputs).fit(X[tr], y_tr).predict(X[va])
            scores.append(float(np.mean([p == t for p, t in zip(pred, y_va, strict=True)])))
        C = C_GRID[int(np.argmax(scores))]
    return IntentClassifier(C=C, seed=seed, inputs=inputs).fit(X[tr], y_tr, X[va], y_va)


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
    C: float | None = None,
    seed: int = 0,
    inputs: Inputs = EMBEDDING,
    text_means: Mapping[str, np.ndarray] | None = None,
) -> tuple[IntentClassifier, DistillReport]:
    """(fitted classifier, report) from embeddings and LLM labels joined on session id. `inputs` says what
    the classifier reads; with `embedding+text`, `text_means` (session id -> mean page-text vector) must
    hold every labelled session. The report's cost fields stay empty: they need the encoder
    (`DistillReport.with_cost`)."""
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
    X = classifier_input(check_inputs(inputs), mat[[row[s] for s in ids]], _text_rows(ids, inputs, text_means))
    y = [label_of[s] for s in ids]
    part = visitor_split([visitors.get(s, s) for s in ids], seed)
    tr, va, te = (np.flatnonzero(part == k) for k in (0, 1, 2))
    if len(te) == 0 or len(va) == 0:
        raise ValueError("too few visitors to hold out validation and test sessions")
    clf = fit_classifier(X, y, tr, va, C, seed, inputs=inputs)
    pred, _ = clf.predict(X[te])
    y_te = [y[i] for i in te]
    index = {c: i for i, c in enumerate(clf.classes_)}
    # A label that only held-out sessions carry (a rare one, split by visitor) cannot be predicted: -1
    # never equals an argmax, so it counts as a miss at the model's confidence.
    yi = np.array([index.get(c, -1) for c in y_te])
    probs = clf.predict_proba(X[te])
    raw = IntentClassifier.softmax_logits(clf.logits(X[te]))
    truth = None
    if true_intents:
        truth = _truth_cross_fitted(X, y, [true_intents.get(s) for s in ids], [visitors.get(s, s) for s in ids],
                                    C, seed)  # fmt: skip
    report = DistillReport(
        labelled_sessions=len(ids),
        split=Split(train=len(tr), validation=len(va), test=len(te)),
        classes=list(clf.classes_),
        C=clf.C,
        temperature=clf.temperature_,
        threshold=clf.threshold_,
        agreement=Agreement(
            accuracy=float(np.mean([p == t for p, t in zip(pred, y_te, strict=True)])),
            macro_f1=float(f1_score(y_te, pred, average="macro", zero_division=0)),
            cohen_kappa=float(cohen_kappa_score(y_te, pred)),
        ),
        ece=Calibration(
            uncalibrated=expected_calibration_error(raw, yi), calibrated=expected_calibration_error(probs, yi)
        ),
        # held-out sessions, the LLM's label as the answer (the distiller's target)
        reliability=[ReliabilityBin(**b) for b in reliability(probs, yi)],  # type: ignore[arg-type]
        other_share_test=float(np.mean([p == clf.other for p in pred])),
        test_labels_unseen_in_training=sorted({c for c in y_te if c not in index}),
        truth=truth,
        inputs=inputs,
    )
    return clf, report


def _text_rows(ids: list[str], inputs: Inputs, text_means: Mapping[str, np.ndarray] | None) -> np.ndarray | None:
    """The text means of `ids` in order, when `inputs` reads them."""
    if inputs == EMBEDDING:
        return None
    if text_means is None:
        raise ValueError("inputs embedding+text needs the sessions' text means (text_means)")
    missing = [s for s in ids if s not in text_means]
    if missing:
        raise ValueError(f"{len(missing)} labelled sessions have no text mean, e.g. {missing[0]!r}")
    return np.stack([np.asarray(text_means[s], np.float32) for s in ids])


def _truth_cross_fitted(
    X: np.ndarray, y: list[str], truth: list[str | None], visitors: list[str], C: float | None, seed: int
) -> TruthScore:
    """LLM and distilled accuracy against the true intents, every labelled session scored out of fold."""
    fold = fold_of(visitors, seed, TRUTH_FOLDS)
    inner = visitor_split(visitors, seed + 1) == 1  # the other folds' validation share (~20%)
    hits_llm, hits_dis, n, skipped = 0, 0, 0, 0
    for k in range(TRUTH_FOLDS):
        test = np.flatnonzero((fold == k) & np.array([t is not None for t in truth]))
        rest = fold != k
        tr, va = np.flatnonzero(rest & ~inner), np.flatnonzero(rest & inner)
        if len(test) == 0 or len(va) == 0 or len({y[i] for i in tr}) < 2:
            skipped += len(test)
            continue
        clf = fit_classifier(X, y, tr, va, C, seed)
        mapping = many_to_one([y[i] for i in np.flatnonzero(rest)], [truth[i] for i in np.flatnonzero(rest)])
        pred, _ = clf.predict(X[test])
        hits_llm += sum(mapping.get(y[i]) == truth[i] for i in test)
        hits_dis += sum(mapping.get(p) == truth[i] for p, i in zip(pred, test, strict=True))
        n += len(test)
    acc_llm = hits_llm / n if n else 0.0
    acc_dis = hits_dis / n if n else 0.0
    return TruthScore(sessions=n, folds=TRUTH_FOLDS, skipped=skipped, llm_accuracy=acc_llm, distilled_accuracy=acc_dis,
                      drop=1 - acc_dis / acc_llm if acc_llm else None, mapping=many_to_one(y, truth))
