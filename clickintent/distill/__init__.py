"""Distillation: the LLM's labels learnt by a classifier on session embeddings (see classifier.py); `distill()`
(fit.py) returns a `DistillReport` (report.py); `distill_step` (step.py) runs the step on files."""

from clickintent.distill.classifier import IntentClassifier, bundle_taxonomy, expected_calibration_error
from clickintent.distill.report import DistillReport

__all__ = ["DistillReport", "IntentClassifier", "bundle_taxonomy", "expected_calibration_error"]
