"""The distilled intent classifier: multinomial logistic regression on session embeddings.

It learns the LLM's labels from session embeddings, so every session can be labelled in microseconds
(arXiv 2606.26277, section "Distillation"). Three things are fitted, in order:
1. the weights (`coef_`, `intercept_`): scikit-learn's L2-regularised multinomial logistic regression;
2. a temperature (`temperature_`) on held-out validation rows, minimising their negative log-likelihood
   (Guo et al. 2017, https://arxiv.org/abs/1706.04599), so `predict_proba` is calibrated;
3. a confidence threshold (`threshold_`) on the same validation rows: a session whose top probability is
   below it gets `other`; the threshold maximises macro-F1 against the LLM labels there.

Prediction is plain numpy (one matrix product and a softmax), so the service and Spark executors need no
scikit-learn. What a row holds is `inputs` (distill/features.py): the session embedding, or the embedding
followed by the session's mean page-text vector; classifier.json records it (a bundle written before the key
reads as `embedding`). Weights are stored as safetensors + JSON in the bundle (component `classifier`,
beside the taxonomy it was trained on): nothing here uses pickle. Left out: class re-weighting, non-linear heads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clickintent.bundle import Bundle, BundleError, add_to_bundle, json_bytes, load_bundle
from clickintent.distill.features import EMBEDDING, INPUTS, Inputs, check_inputs

COMPONENT = "classifier"
WEIGHTS_FILE = "classifier.safetensors"
CONFIG_FILE = "classifier.json"
TAXONOMY_FILE = "taxonomy.json"
OTHER = "other"


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _nll(logits: np.ndarray, y: np.ndarray, t: float) -> float:
    p = softmax(logits / t)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature in [0.05, 20] minimising NLL (golden-section search on log T; NLL is unimodal in T)."""
    lo, hi = np.log(0.05), np.log(20.0)
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = _nll(logits, y, float(np.exp(a))), _nll(logits, y, float(np.exp(b)))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = _nll(logits, y, float(np.exp(a)))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = _nll(logits, y, float(np.exp(b)))
    return float(np.exp((lo + hi) / 2))


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """The reliability diagram's points: per non-empty equal-width bin of top-1 confidence, its range, the
    mean confidence, the accuracy and the number of sessions."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    return [{"lo": float(edges[b]), "hi": float(edges[b + 1]), "confidence": float(conf[idx == b].mean()),
             "accuracy": float(correct[idx == b].mean()), "n": int((idx == b).sum())}
            for b in range(bins) if (idx == b).any()]  # fmt: skip


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE of the top-1 probability: sum over equal-width confidence bins of |accuracy - confidence| * share."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += abs(float(correct[m].mean()) - float(conf[m].mean())) * float(m.mean())
    return ece


class IntentClassifier:
    """Embeddings in, taxonomy label ids out.

    Args:
        C: inverse L2 strength of the logistic regression.
        max_iter: L-BFGS iterations.
        other: the label id given to low-confidence sessions (it need not occur in the training labels).
        seed: for the solver.
        inputs: what a row of X holds (distill/features.py `INPUTS`): the embedding, or embedding + text mean.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 2000, other: str = OTHER, seed: int = 0,
                 inputs: Inputs = EMBEDDING) -> None:  # fmt: skip
        self.C = C
        self.max_iter = max_iter
        self.other = other
        self.seed = seed
        self.inputs: Inputs = check_inputs(inputs)

    # -- fitting -------------------------------------------------------------------------------------

    def fit(
        self, X: np.ndarray, y: Sequence[str], X_val: np.ndarray | None = None, y_val: Sequence[str] | None = None
    ) -> IntentClassifier:
        """Fit the weights on (X, y), then temperature and threshold on (X_val, y_val) when given
        (otherwise temperature 1 and threshold 0: no session is pushed to `other`)."""
        from sklearn.linear_model import LogisticRegression

        classes = sorted(set(y) | {self.other})
        index = {c: i for i, c in enumerate(classes)}
        yi = np.array([index[c] for c in y])
        present = np.unique(yi)
        if len(present) < 2:
            raise ValueError(f"need at least two distinct labels to fit a classifier, got {len(present)}")
        lr = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed)
        lr.fit(np.asarray(X, np.float64), yi)
        # Classes absent from training (e.g. `other` when the LLM never chose it) get a very low logit.
        coef = np.zeros((len(classes), X.shape[1]), np.float32)
        bias = np.full(len(classes), -30.0, np.float32)
        coef[lr.classes_] = lr.coef_ if len(present) > 2 else np.vstack([-lr.coef_, lr.coef_]) / 2
        bias[lr.classes_] = lr.intercept_ if len(present) > 2 else np.array([-1, 1]) * lr.intercept_[0] / 2
        self.classes_ = classes
        self.coef_ = coef
        self.intercept_ = bias
        self.temperature_ = 1.0
        self.threshold_ = 0.0
        if X_val is not None and y_val is not None and len(y_val):
            yv = np.array([index.get(c, index[self.other]) for c in y_val])
            self.temperature_ = fit_temperature(self.logits(X_val), yv)
            self.threshold_ = self._choose_threshold(self.predict_proba(X_val), yv)
        return self

    def _choose_threshold(self, probs: np.ndarray, y: np.ndarray) -> float:
        from sklearn.metrics import f1_score

        other = self.classes_.index(self.other)
        best, best_f1 = 0.0, -1.0
        for t in np.unique(np.round(np.concatenate([[0.0], probs.max(axis=1)]), 3)):
            pred = np.where(probs.max(axis=1) >= t, probs.argmax(axis=1), other)
            f1 = float(f1_score(y, pred, average="macro", zero_division=0))
            if f1 > best_f1 + 1e-9:
                best, best_f1 = float(t), f1
        return best

    # -- prediction ----------------------------------------------------------------------------------

    def logits(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, np.float32) @ self.coef_.T + self.intercept_

    @staticmethod
    def softmax_logits(logits: np.ndarray) -> np.ndarray:
        """Uncalibrated probabilities (temperature 1), for comparison."""
        return softmax(logits)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """[N, K] calibrated probabilities over `classes_`."""
        return softmax(self.logits(X) / self.temperature_)

    def predict(self, X: np.ndarray) -> tuple[list[str], np.ndarray]:
        """(label id per row, its probability); rows under `threshold_` get `other` with their top probability."""
        probs = self.predict_proba(X)
        top = probs.argmax(axis=1)
        conf = probs[np.arange(len(top)), top]
        other = self.classes_.index(self.other)
        top = np.where(conf >= self.threshold_, top, other)
        return [self.classes_[i] for i in top], conf.astype(np.float32)

    # -- bundle --------------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {
            "kind": "logistic_regression",
            "classes": self.classes_,
            "other": self.other,
            "temperature": self.temperature_,
            "threshold": self.threshold_,
            "dim": int(self.coef_.shape[1]),
            "C": self.C,
            "inputs": self.inputs,
        }

    def save(self, bundle: str | Path, taxonomy_json: bytes, info: dict[str, Any] | None = None) -> Bundle:
        """Write the `classifier` component (weights, config, the taxonomy it predicts) into `bundle`."""
        from safetensors.numpy import save

        weights = save({"coef": self.coef_, "intercept": self.intercept_})
        files = {WEIGHTS_FILE: weights, CONFIG_FILE: json_bytes(self.config()), TAXONOMY_FILE: taxonomy_json}
        return add_to_bundle(bundle, COMPONENT, files, info)

    @classmethod
    def from_bundle(cls, bundle: Bundle | str | Path) -> IntentClassifier:
        b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        if COMPONENT not in b.components:
            raise BundleError(
                f"{b.path} has no intent classifier: run `clickintent distill` first",
                "the bundle has no intent classifier",
            )
        cfg = b.read_json(CONFIG_FILE)
        w = b.read_tensors(WEIGHTS_FILE)
        inputs = cfg.get("inputs", EMBEDDING)  # bundles written before the key: embedding only
        if inputs not in INPUTS:
            raise BundleError(
                f"classifier inputs {inputs!r} unknown to this version (expected one of {', '.join(INPUTS)})",
                "the classifier's inputs are unknown to this version",
            )
        clf = cls(C=float(cfg.get("C", 1.0)), other=cfg["other"], inputs=inputs)
        clf.classes_ = list(cfg["classes"])
        clf.coef_ = w["coef"].numpy().astype(np.float32)
        clf.intercept_ = w["intercept"].numpy().astype(np.float32)
        clf.temperature_ = float(cfg["temperature"])
        clf.threshold_ = float(cfg["threshold"])
        if clf.coef_.shape != (len(clf.classes_), int(cfg["dim"])):
            raise BundleError(
                f"classifier weights {clf.coef_.shape} do not match its config",
                "the classifier's weights do not match its config",
            )
        return clf


def bundle_taxonomy(bundle: Bundle | str | Path) -> dict[str, Any]:
    """The taxonomy stored with the classifier, as a dict (see clickintent.taxonomy.Taxonomy.from_dict)."""
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    return dict(json.loads(b.read_bytes(TAXONOMY_FILE)))
