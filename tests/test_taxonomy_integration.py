"""The taxonomy pipeline on the real embedded Gemma 3 270M (in-process, one thread): a prompt-injection
string in titles and searches does not change its labels, and a cluster-mode build names real clusters.
A few dozen short calls; the text vectors are the hashing stand-in so MiniLM is not loaded here."""

from __future__ import annotations

import pyarrow as pa
import pytest
from test_taxonomy import INJECTION, intent_of, make_sessions, small_taxonomy

from clickintent import schema
from clickintent.encoder.text import HashingEncoder
from clickintent.llm import Cache
from clickintent.llm.base import LLM
from clickintent.taxonomy.cluster import KMeansClusterer
from clickintent.taxonomy.generate import generate_cluster
from clickintent.taxonomy.label import label_sessions

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gemma() -> LLM:
    pytest.importorskip("llama_cpp", reason="needs the llm-local extra: pip install 'clickintent[llm-local]'")
    from clickintent.llm.local import LocalBackend

    return LocalBackend(n_ctx=4096, progress=False, cache=Cache())


def test_injection_in_titles_and_searches_does_not_change_gemma_labels(gemma: LLM) -> None:
    tax = small_taxonomy()  # it has a "Fraud report" label for the injection to aim at
    clean = label_sessions(make_sessions(2), tax, gemma, sample=None)
    attacked = label_sessions(make_sessions(2, inject=INJECTION), tax, gemma, sample=None)
    # The instruction never reaches the model (tests/test_taxonomy.py checks the prompts); what does is a
    # title ending in "[instruction removed]", which moves some of the 270M model's near-ties (2 of 8 on
    # an AVX2 build). What must not happen is the injection's aim: a session pulled to its target.
    pairs = list(zip(clean.column("intent").to_pylist(), attacked.column("intent").to_pylist(), strict=True))
    assert all(a != "fraud-report" or c == "fraud-report" for c, a in pairs), pairs
    assert sum(c == a for c, a in pairs) >= len(pairs) // 2, pairs
    assert clean.schema == schema.LABELS


def test_cluster_mode_on_gemma_builds_a_grounded_taxonomy(gemma: LLM) -> None:
    sessions: pa.Table = make_sessions(4)
    result = generate_cluster(sessions, gemma, clusterer=KMeansClusterer(k=4), text_encoder=HashingEncoder())
    tax = result.taxonomy
    assert tax.ids[-1] == "other" and 2 <= len(tax.labels) - 1 <= 4
    for lb in tax.labels[:-1]:
        assert lb.name and lb.description and lb.category and lb.examples and lb.visits
    # the clusters are the four journeys, whatever the model called them
    by_intent: dict[str, set[str]] = {}
    for sid, lid in result.assignments.items():
        by_intent.setdefault(intent_of(sid), set()).add(lid)
    assert all(len(v) == 1 for v in by_intent.values())
    labels = label_sessions(sessions, tax, gemma, sample=8, seed=0)
    assert labels.num_rows == 8 and set(labels.column("intent").to_pylist()) <= set(tax.ids)
