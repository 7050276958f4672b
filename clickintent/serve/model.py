"""The bundle as the service holds it: redacted events in, embeddings, intents and explanations out.

`ServingModel.load(dir)` verifies the bundle's manifest, loads the encoder, the distilled classifier and its
taxonomy, picks the encoder runtime (serve/engine.py `Engine`: torch, or ONNX Runtime from
clickintent.serve.onnx, whose graph is exported from the same `SessionEncoder.forward`) and warms it up.
`encode` runs several sessions in one encoder call; a session asked to be *explained* also gets one copy
per event with that event hidden behind the model's [MASK] vector (the vector masked-event training taught
it), so leave-one-out occlusion costs one batched call: an event's weight is how much the top label's
probability drops without it. A classifier that reads page text too (inputs `embedding+text`) gets each
session's text mean from the same frame (clickintent.distill.features, as `clickintent label` computes it),
and each explanation copy the mean without the event it hides. What it leaves out: batching across requests
(batcher.py), caching.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clickintent.bundle import BundleError, load_bundle
from clickintent.distill import IntentClassifier, bundle_taxonomy
from clickintent.distill.features import classifier_input, occluded_text_means, session_text_means, uses_text
from clickintent.encoder.features import EventFrame, Featurizer, collate
from clickintent.encoder.io import load_encoder
from clickintent.encoder.model import SessionEncoder
from clickintent.encoder.text import TextVectors, text_encoder
from clickintent.serve.engine import Engine, TorchEngine
from clickintent.taxonomy.taxonomy import Taxonomy

log = logging.getLogger(__name__)

ENGINES = ("auto", "onnx", "torch")
TOP_K = 3
MAX_ENGINE_DIFF = 1e-4  # the ONNX graph must give the torch model's vectors within this


def make_engine(model: SessionEncoder, name: str, threads: int = 1) -> Engine:
    """`torch`, `onnx` (ONNX Runtime; extra `onnx`), or `auto`: ONNX Runtime when it is installed and its
    export works (it measured 4-6x faster on this model: docs/BENCHMARKS.md, issue 7), else torch."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; expected one of {', '.join(ENGINES)}")
    if name == "torch":
        return TorchEngine(model)
    try:
        from clickintent.serve.onnx import OnnxEngine

        return OnnxEngine.export(model, threads)
    except Exception as exc:
        if name == "onnx":
            raise RuntimeError(f"the ONNX engine failed ({exc}); it needs pip install 'clickintent[onnx]'") from exc
        log.warning("ONNX Runtime engine unavailable (%s): serving with torch", exc)
        return TorchEngine(model)


@dataclass(frozen=True)
class Scored:
    """One session's result: its embedding, class probabilities and, when explained, event weights."""

    embedding: np.ndarray  # [out_dim]
    probs: np.ndarray  # [K] over classifier classes
    label: int  # index into classes (after the `other` threshold)
    weights: np.ndarray | None  # [n_kept] drop of the top class's probability per hidden event
    kept_from: int  # index (in the session) of the first event the encoder read


class ServingModel:
    """Encoder + classifier + taxonomy of one bundle. Not thread-safe: one inference thread uses it."""

    def __init__(
        self,
        path: Path,
        bundle_version: str,
        model_version: str,
        featurizer: Featurizer,
        engine: Engine,
        classifier: IntentClassifier,
        taxonomy: Taxonomy,
    ) -> None:
        self.path = path
        self.bundle_version = bundle_version
        self.model_version = model_version
        self.featurizer = featurizer
        self.engine = engine
        self.classifier = classifier
        self.taxonomy = taxonomy
        self.taxonomy_version = taxonomy.version
        self.max_events = featurizer.vocab.max_events
        labels = {lb.id: lb for lb in taxonomy.labels}
        self.label_info = [
            (c, labels[c].name, labels[c].category) if c in labels else (c, c, "") for c in classifier.classes_
        ]

    @classmethod
    def load(
        cls,
        path: str | Path,
        engine: str = "auto",
        text_cache: str | Path | None = None,
        threads: int = 1,
        text: TextVectors | None = None,
    ) -> ServingModel:
        """Verify and load the bundle at `path` (resolved: a symlink flipped later is read at the next load).
        `text` reuses another model's text vectors (and their memory cache) when the text model matches."""
        t0 = time.perf_counter()
        root = Path(path).resolve()
        bundle = load_bundle(root)
        model, vocab, model_version = load_encoder(bundle)
        classifier = IntentClassifier.from_bundle(bundle)
        want = model.config.out_dim + (vocab.text_dim if uses_text(classifier.inputs) else 0)
        if classifier.coef_.shape[1] != want:
            raise BundleError(
                f"classifier reads {classifier.coef_.shape[1]}-d rows ({classifier.inputs}), the encoder and "
                f"text model give {want}",
                "the classifier does not read the encoder's embeddings",
            )
        taxonomy = Taxonomy.from_dict(bundle_taxonomy(bundle))
        if text is None or text.name != vocab.text_model:
            text = TextVectors(text_encoder(vocab.text_model), text_cache)
        featurizer = Featurizer(vocab, text)
        reference = TorchEngine(model)
        runtime = make_engine(model, engine, threads)
        self = cls(root, bundle.version, model_version, featurizer, runtime, classifier, taxonomy)
        try:
            self._check_engine(reference)
        except BundleError as exc:
            if engine != "auto":
                raise
            log.warning("%s: serving with torch", exc)
            self.engine = runtime = reference
            self._check_engine(reference)
        log.info(
            "loaded bundle %s (%s, engine %s) in %.2fs", bundle.version, model_version, runtime.name,
            time.perf_counter() - t0,
        )  # fmt: skip
        return self

    def _check_engine(self, reference: Engine) -> None:
        """Warm up, and make sure a non-torch engine gives the torch model's vectors."""
        probe = [_probe_session(8), _probe_session(3)]
        got = self.encode(probe, [True, False])
        if reference is self.engine:
            return
        frame = self.featurizer.frame_rows(probe)
        want = reference.run(collate(frame, np.arange(2)), None)
        diff = float(np.abs(np.stack([got[0].embedding, got[1].embedding]) - want).max())
        if diff > MAX_ENGINE_DIFF:
            msg = f"the {self.engine.name} engine differs from torch by {diff:.2e} on this bundle"
            raise BundleError(msg, msg)

    # -- inference -----------------------------------------------------------------------------------

    def encode(self, sessions: Sequence[Sequence[dict[str, Any]]], explain: Sequence[bool]) -> list[Scored]:
        """Score redacted, time-ordered sessions in one encoder call (see the module doc)."""
        frame = self.featurizer.frame_rows(sessions)
        lengths = frame.lengths
        copies = [1 + (int(n) if ex else 0) for n, ex in zip(lengths, explain, strict=True)]
        rows = np.repeat(np.arange(len(sessions)), copies)
        starts = np.concatenate([[0], np.cumsum(copies)])
        T = int(lengths.max()) if len(lengths) else 0
        mask = None
        if any(c > 1 for c in copies):
            mask = np.zeros((len(rows), T), bool)
            for i, c in enumerate(copies):
                n = c - 1
                mask[starts[i] + 1 + np.arange(n), np.arange(n)] = True
        z = self.engine.run(collate(frame, rows), mask)
        probs = self.classifier.predict_proba(classifier_input(self.classifier.inputs, z, self._text(frame, copies)))
        top = probs.argmax(axis=1)
        out = []
        for i, session in enumerate(sessions):
            r = int(starts[i])
            p = probs[r]
            label = int(top[r]) if p[top[r]] >= self.classifier.threshold_ else self.other_index
            weights = p[top[r]] - probs[r + 1 : starts[i + 1], top[r]] if copies[i] > 1 else None
            out.append(Scored(z[r], p, label, weights, len(session) - int(lengths[i])))
        return out

    def _text(self, frame: EventFrame, copies: Sequence[int]) -> np.ndarray | None:
        """Text means per encoder row (a session's, then its explanation copies' without their event)."""
        if not uses_text(self.classifier.inputs):
            return None
        means = session_text_means(frame)
        parts = [means[i : i + 1] if c == 1 else np.concatenate([means[i : i + 1], occluded_text_means(frame, i)])
                 for i, c in enumerate(copies)]  # fmt: skip
        return np.concatenate(parts) if parts else means

    @property
    def other_index(self) -> int:
        return self.classifier.classes_.index(self.classifier.other)

    def top_labels(self, probs: np.ndarray, k: int = TOP_K) -> list[tuple[str, str, str, float]]:
        """(id, name, category, probability) of the k most probable labels."""
        idx = np.argsort(-probs, kind="stable")[:k]
        return [(*self.label_info[i], float(probs[i])) for i in idx]


def _probe_session(n: int) -> list[dict[str, Any]]:
    base = 1_735_689_600_000_000  # 2025-01-01 in microseconds
    return [
        {
            "ts": base + i * 20_000_000, "url": f"https://probe.example/p{i % 3}", "page": f"probe.example/p{i % 3}",
            "page_title": f"probe page {i % 3}", "event_type": "page_view", "device": "desktop",
            "referrer": None, "search_query": "probe" if i == 1 else None, "dwell_ms": 20_000,
        }
        for i in range(n)
    ]  # fmt: skip
