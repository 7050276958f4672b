"""The distill step on files: embeddings + LLM labels + sessions -> the classifier in the bundle and a
complete `DistillReport` (fit, agreement, calibration, truth on a simulated world, and cost).

`clickintent distill` is this function plus printing. The cost is measured on as many torch threads as the
LLM labeller used (its usage file beside the labels, 1 when there is none), so the speed-ups compare like
with like. Left out: writing distill.json (the caller chooses where: `DistillReport.save`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.parquet as pq

from clickintent.distill.classifier import IntentClassifier
from clickintent.distill.features import EMBEDDING, Inputs, text_means_by_session, uses_text
from clickintent.distill.fit import distill
from clickintent.distill.report import DistillReport


@dataclass(frozen=True)
class DistillResult:
    classifier: IntentClassifier
    report: DistillReport


def llm_usage_of(labels: Path) -> dict[str, float] | None:
    """The usage file `clickintent taxonomy label` writes beside its labels (labels.json), if any."""
    meta = labels.with_suffix(".json")
    return json.loads(meta.read_text()) if meta.exists() else None


def distill_step(embeddings: Path, labels: Path, taxonomy: Path, sessions: Path, bundle: Path, *,
                 sim_dir: Path | None = None, C: float | None = None, seed: int = 0,
                 inputs: Inputs = EMBEDDING) -> DistillResult:  # fmt: skip
    """Fit the classifier on `inputs` (with text: the labelled sessions' text means, from the bundle's
    featurizer), store it in `bundle` beside `taxonomy`, and measure its cost. ValueError when too few
    labelled sessions have an embedding."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from clickintent.distill.label import Labeller, latency
    from clickintent.encoder.embed import Embedder
    from clickintent.taxonomy.taxonomy import Taxonomy

    tax = Taxonomy.load(taxonomy)
    table = pq.read_table(sessions)
    visitors = dict(zip(table.column("session_id").to_pylist(), table.column("visitor_id").to_pylist(), strict=True))
    truth = None
    if sim_dir is not None:
        from clickintent.sim.join import true_intents

        truth = true_intents(table, sim_dir)
    llm_labels = pq.read_table(labels)
    embedder = Embedder.from_bundle(bundle, "cpu")
    text = None
    if uses_text(inputs):
        labelled = pa.array(sorted(set(llm_labels.column("session_id").to_pylist())))
        rows = table.filter(pc.is_in(table.column("session_id"), value_set=labelled))
        text = text_means_by_session(embedder.featurizer, rows)
    clf, report = distill(pq.read_table(embeddings), llm_labels, visitors, true_intents=truth, C=C, seed=seed,
                          inputs=inputs, text_means=text)  # fmt: skip
    info = {"taxonomy_version": tax.version, "agreement": asdict(report.agreement),
            "labelled_sessions": llm_labels.num_rows, "inputs": inputs}  # fmt: skip
    clf.save(bundle, taxonomy.read_bytes(), info)
    usage = llm_usage_of(labels)
    labeller = Labeller(embedder, IntentClassifier.from_bundle(bundle), tax.version)
    lat = latency(labeller, table, threads=int((usage or {}).get("threads") or 1))
    # one session at a time on both sides for `speedup`; the LLM's figure is its mean seconds per label
    return DistillResult(clf, report.with_cost(lat, (usage or {}).get("seconds_per_label")))
