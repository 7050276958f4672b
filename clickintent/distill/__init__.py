"""Distillation: the LLM's labels learnt by a classifier on session embeddings (see classifier.py)."""

from clickintent.distill.classifier import IntentClassifier, bundle_taxonomy, expected_calibration_error

__all__ = ["IntentClassifier", "bundle_taxonomy", "expected_calibration_error"]
