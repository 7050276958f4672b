"""`DistillReport`: what `distill()` measured, as one typed result that the CLI writes to distill.json and
the HTML report, the demo's summary and `benchmarks/bench_demo.py` read back.

The JSON keeps the keys distill.json always had (an old file reads back unchanged); `to_json` and
`from_json` are plain JSON, no pickle. The cost part (the distilled labeller's latency and the speed-up over
the LLM) needs the encoder in a bundle, so `distill()` leaves it empty and `with_cost` fills it in
(`clickintent.distill.step.distill_step` does both). Left out: any figure not measured on held-out sessions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Split:
    """LLM-labelled sessions per part of the visitor split."""

    train: int  # fit the weights
    validation: int  # C, temperature and the `other` threshold
    test: int  # held out: every figure below


@dataclass(frozen=True)
class Agreement:
    """The distilled labels against the LLM's, on the held-out sessions."""

    accuracy: float
    macro_f1: float
    cohen_kappa: float


@dataclass(frozen=True)
class Calibration:
    """Expected calibration error of the top-1 probability, held out."""

    uncalibrated: float  # softmax of the raw logits
    calibrated: float  # after temperature scaling


@dataclass(frozen=True)
class ReliabilityBin:
    """One non-empty confidence bin of the reliability diagram (held out, the LLM's label as the answer)."""

    lo: float
    hi: float
    confidence: float  # mean top-1 probability in the bin
    accuracy: float  # share of the bin whose top label is the LLM's
    n: int


@dataclass(frozen=True)
class TruthScore:
    """LLM and distilled labels against the simulated true intents, cross-fitted (see fit.py)."""

    sessions: int  # labelled sessions with a true intent, each scored out of fold
    folds: int
    skipped: int  # sessions of folds that could not be fitted
    llm_accuracy: float
    distilled_accuracy: float
    drop: float | None  # 1 - distilled / LLM; None when the LLM scored 0
    mapping: dict[str, str]  # taxonomy label -> the true intent most of its sessions have


@dataclass(frozen=True)
class Latency:
    """Distilled label cost in seconds, in one process (`clickintent.distill.label.latency`)."""

    p50: float  # one session at a time: embed + classify
    p99: float
    mean: float
    n: int
    batch_per_session: float  # per session in one batch, the way `clickintent label` runs
    batch_sessions: int
    threads: int  # torch threads, as many as the LLM labeller used


@dataclass(frozen=True)
class DistillReport:
    """Everything distill.json holds: the fit, agreement with the LLM, calibration, truth and cost."""

    labelled_sessions: int
    split: Split
    classes: list[str]
    C: float
    temperature: float
    threshold: float
    agreement: Agreement
    ece: Calibration
    reliability: list[ReliabilityBin]
    other_share_test: float  # held-out sessions the classifier calls `other`
    test_labels_unseen_in_training: list[str]  # counted as misses
    truth: TruthScore | None = None  # only on a simulated world
    inputs: str = "embedding"  # what the classifier reads (distill/features.py INPUTS)
    latency_s: Latency | None = None  # filled by `with_cost`
    llm_latency_s: float | None = None  # LLM seconds per label, from the labels' usage file
    speedup: float | None = None  # LLM / distilled, one session at a time
    speedup_batch: float | None = None  # LLM / distilled per session in a batch
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # keys a newer writer added

    def with_cost(self, latency: dict[str, float], llm_seconds_per_label: float | None) -> DistillReport:
        """This report with the distilled labeller's latency and, given the LLM's cost, the speed-ups."""
        lat = Latency(**{k: latency[k] for k in Latency.__dataclass_fields__})  # type: ignore[arg-type]
        if not llm_seconds_per_label:
            return replace(self, latency_s=lat)
        return replace(self, latency_s=lat, llm_latency_s=llm_seconds_per_label,
                       speedup=llm_seconds_per_label / lat.p50,
                       speedup_batch=llm_seconds_per_label / lat.batch_per_session)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return out.pop("extra") | out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DistillReport:
        known = cls.__dataclass_fields__
        truth, lat = d.get("truth"), d.get("latency_s")
        return cls(
            labelled_sessions=int(d["labelled_sessions"]),
            split=Split(**d["split"]),
            classes=list(d["classes"]),
            C=float(d["C"]),
            temperature=float(d["temperature"]),
            threshold=float(d["threshold"]),
            agreement=Agreement(**d["agreement"]),
            ece=Calibration(**d["ece"]),
            reliability=[ReliabilityBin(**b) for b in d.get("reliability", [])],
            other_share_test=float(d.get("other_share_test", 0.0)),
            test_labels_unseen_in_training=list(d.get("test_labels_unseen_in_training", [])),
            truth=TruthScore(**{"folds": 5, "skipped": 0, **truth}) if truth else None,
            inputs=str(d.get("inputs", "embedding")),
            latency_s=Latency(**{"threads": 1, **lat}) if lat else None,
            llm_latency_s=d.get("llm_latency_s"),
            speedup=d.get("speedup"),
            speedup_batch=d.get("speedup_batch"),
            extra={k: v for k, v in d.items() if k not in known},
        )

    @classmethod
    def from_json(cls, text: str) -> DistillReport:
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: Path) -> DistillReport:
        return cls.from_json(path.read_text())
