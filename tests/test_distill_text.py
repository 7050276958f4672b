"""The distilled classifier's second input, the session's mean page-text vector (clickintent.distill.features):
the mean itself, the bundle round trip and an old bundle, the same labels in batch and in the service, and
the `clickintent distill --inputs` option."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from clickintent import schema
from clickintent.bundle import BundleError, add_to_bundle, json_bytes
from clickintent.distill import IntentClassifier
from clickintent.distill.classifier import COMPONENT, CONFIG_FILE, TAXONOMY_FILE, WEIGHTS_FILE
from clickintent.distill.features import classifier_input, occluded_text_means, session_text_means
from clickintent.distill.label import Labeller, label_file
from clickintent.encoder.embed import Embedder, embed_file
from clickintent.encoder.toy import TOPICS, toy_sessions
from clickintent.serve.model import ServingModel
from clickintent.serve.toy import toy_bundle, toy_taxonomy_json


@pytest.fixture(scope="module")
def text_bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A toy bundle whose classifier reads embedding+text, its text cache, and 80 unseen toy sessions."""
    root = tmp_path_factory.mktemp("distill-text")
    cache = root / "text"
    bundle = toy_bundle(root / "bundle", sessions=240, epochs=1, text_cache=cache, inputs="embedding+text")
    table, topic = toy_sessions(80, seed=5, mean_events=7)
    src = root / "sessions.parquet"
    pq.write_table(table, src, row_group_size=30)
    return {"root": root, "bundle": bundle, "cache": cache, "table": table, "topic": topic, "sessions": src}


def _event(i: int, title: str | None, query: str | None = None) -> dict[str, Any]:
    ts = datetime(2025, 3, 1, 9, tzinfo=UTC) + timedelta(seconds=30 * i)
    return {"ts": ts, "url": f"https://bank.example/p{i}", "page": f"bank.example/p{i}", "page_title": title,
            "event_type": "page_view", "device": "desktop", "referrer": None, "search_query": query,
            "dwell_ms": 10_000}  # fmt: skip


@pytest.mark.parametrize("dense", [True, False], ids=["dense", "sparse"])
def test_text_means_equal_a_hand_computation(text_bundle: dict[str, Any], dense: bool,
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import clickintent.distill.features as features

    monkeypatch.setattr(features, "DENSE_LIMIT", 1 << 30 if dense else 0)  # a request's path / a chunk's path
    featurizer = Embedder.from_bundle(text_bundle["bundle"], "cpu", text_bundle["cache"]).featurizer
    long_n = featurizer.vocab.max_events + 3
    sessions = [
        [_event(0, "Cash ISA"), _event(1, " Cash ISA ", "isa rates"), _event(2, None, "fixed bond"), _event(3, "")],
        [_event(0, None), _event(1, "   ")],  # no text at all
        [_event(i, f"Page {i}") for i in range(long_n)],  # only the last max_events events are read
    ]

    def by_hand(events: list[dict[str, Any]]) -> np.ndarray:
        texts = [t.strip() for ev in events for t in (ev["page_title"], ev["search_query"]) if t and t.strip()]
        if not texts:
            return np.zeros(featurizer.vocab.text_dim, np.float32)
        return np.asarray(featurizer.text.lookup(texts), np.float32).mean(axis=0)

    want = np.stack([by_hand(sessions[0]), by_hand(sessions[1]), by_hand(sessions[2][3:])])
    assert not np.allclose(by_hand(sessions[2]), want[2])  # the truncation matters to the check
    got = session_text_means(featurizer.frame_rows(sessions))
    np.testing.assert_allclose(got, want, atol=1e-6)
    table = pa.Table.from_pylist([{"events": s} for s in sessions], schema=pa.schema([schema.SESSIONS.field("events")]))
    np.testing.assert_allclose(session_text_means(featurizer.frame(table)), want, atol=1e-6)  # the Arrow path
    # leave-one-out, as the service's explanation copies read it: each event's texts gone in turn
    frame = featurizer.frame_rows(sessions[:1])
    loo = np.stack([by_hand(sessions[0][:j] + sessions[0][j + 1 :]) for j in range(4)])
    np.testing.assert_allclose(occluded_text_means(frame, 0), loo, atol=1e-6)


def _fitted(inputs: str, d: int = 8, t: int = 6) -> tuple[IntentClassifier, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    X = rng.normal(size=(300, d + t)).astype(np.float32) + np.eye(3)[y].repeat(5, axis=1)[:, : d + t] * 2
    labels = [f"l{i}" for i in y]
    return IntentClassifier(inputs=inputs).fit(X[:200], labels[:200], X[200:], labels[200:]), X  # type: ignore[arg-type]


def test_embedding_text_bundle_round_trips_and_an_old_bundle_reads_as_embedding(tmp_path: Path) -> None:
    clf, X = _fitted("embedding+text")
    bundle = tmp_path / "bundle"
    clf.save(bundle, json_bytes({"labels": []}))
    assert json.loads((bundle / CONFIG_FILE).read_text())["inputs"] == "embedding+text"
    back = IntentClassifier.from_bundle(bundle)
    assert back.inputs == "embedding+text"
    np.testing.assert_allclose(back.predict_proba(X), clf.predict_proba(X), atol=1e-6)

    old, X_old = _fitted("embedding", d=14, t=0)
    cfg = old.config()
    del cfg["inputs"]  # what a bundle written before the key holds
    from safetensors.numpy import save

    files = {WEIGHTS_FILE: save({"coef": old.coef_, "intercept": old.intercept_}), CONFIG_FILE: json_bytes(cfg),
             TAXONOMY_FILE: json_bytes({"labels": []})}  # fmt: skip
    add_to_bundle(tmp_path / "old", COMPONENT, files)
    loaded = IntentClassifier.from_bundle(tmp_path / "old")
    assert loaded.inputs == "embedding"
    np.testing.assert_allclose(loaded.predict_proba(X_old), old.predict_proba(X_old), atol=1e-6)

    cfg["inputs"] = "embedding+clicks"
    files[CONFIG_FILE] = json_bytes(cfg)
    add_to_bundle(tmp_path / "odd", COMPONENT, files)
    with pytest.raises(BundleError, match="inputs"):
        IntentClassifier.from_bundle(tmp_path / "odd")


def test_classifier_input_needs_the_text_when_it_reads_it() -> None:
    emb = np.ones((3, 4), np.float32)
    assert classifier_input("embedding", emb, None) is emb
    assert classifier_input("embedding+text", emb, np.zeros((3, 2))).shape == (3, 6)
    with pytest.raises(ValueError, match="text"):
        classifier_input("embedding+text", emb, None)
    with pytest.raises(ValueError, match="inputs"):
        classifier_input("text", emb, None)


def test_batch_labels_equal_the_service_labels(text_bundle: dict[str, Any], tmp_path: Path) -> None:
    bundle, cache, table = text_bundle["bundle"], text_bundle["cache"], text_bundle["table"]
    assert IntentClassifier.from_bundle(bundle).inputs == "embedding+text"
    out = tmp_path / "labels.parquet"
    label_file(text_bundle["sessions"], bundle, out, device="cpu", chunk_rows=32, text_cache=cache)
    batch = pq.read_table(out)
    ids = table.column("session_id").to_pylist()
    assert batch.column("session_id").to_pylist() == ids
    # the same from stored embeddings: the sessions are read for their text only
    emb = tmp_path / "embeddings.parquet"
    embed_file(text_bundle["sessions"], bundle, emb, device="cpu", text_cache=cache)
    stored = pq.read_table(label_file(text_bundle["sessions"], bundle, tmp_path / "l2.parquet", embeddings=emb,
                                      device="cpu", chunk_rows=32, text_cache=cache).out)  # fmt: skip
    assert stored.column("intent").to_pylist() == batch.column("intent").to_pylist()
    with pytest.raises(ValueError, match="page text"):
        label_file(None, bundle, tmp_path / "l3.parquet", embeddings=emb, device="cpu", text_cache=cache)

    events = table.column("events").to_pylist()
    for engine in ("torch", "onnx"):
        if engine == "onnx":
            pytest.importorskip("onnxruntime")
        model = ServingModel.load(bundle, engine=engine, text_cache=cache)
        scored = model.encode(events, [i % 3 == 0 for i in range(len(events))])  # some explained
        service = [model.classifier.classes_[s.label] for s in scored]
        assert service == batch.column("intent").to_pylist(), engine
        conf = np.array([s.probs.max() for s in scored])
        np.testing.assert_allclose(conf, batch.column("confidence").to_numpy(), atol=1e-4)
        assert all(s.weights is not None and len(s.weights) == len(e) for s, e in zip(scored[::3], events[::3],
                                                                                        strict=True))  # fmt: skip
    one = Labeller.from_bundle(bundle, "cpu", cache)
    assert [one.label_one(e)[0] for e in events[:10]] == batch.column("intent").to_pylist()[:10]
    truth = [TOPICS[i] for i in text_bundle["topic"]]
    assert np.mean(np.array(batch.column("intent").to_pylist()) == np.array(truth)) > 0.5  # labels mean something


def test_cli_inputs_option_reaches_distill(tmp_path: Path, text_bundle: dict[str, Any],
                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from clickintent.cli import main

    bundle = toy_bundle(tmp_path / "bundle", sessions=200, epochs=1, text_cache=text_bundle["cache"])
    table, topic = toy_sessions(200, seed=9, mean_events=6)
    sessions = tmp_path / "sessions.parquet"
    pq.write_table(table, sessions)
    emb = tmp_path / "embeddings.parquet"
    embed_file(sessions, bundle, emb, device="cpu", text_cache=text_bundle["cache"])
    n = table.num_rows
    labels = pa.Table.from_arrays(
        [table.column("session_id"), pa.array([TOPICS[i] for i in topic]), pa.array([1.0] * n, pa.float32()),
         pa.array(["llm"] * n), pa.array(["v"] * n)], schema=schema.LABELS)  # fmt: skip
    pq.write_table(labels, tmp_path / "labels.parquet")
    (tmp_path / "taxonomy.json").write_bytes(toy_taxonomy_json())
    seen: list[str] = []
    import clickintent.distill.fit as fit

    real = fit.distill

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["inputs"])
        return real(*args, **kwargs)

    monkeypatch.setattr(fit, "distill", spy)
    monkeypatch.setattr("clickintent.distill.step.distill", spy)
    monkeypatch.setenv("CLICKINTENT_CACHE_DIR", str(tmp_path / "cache"))
    args = ["distill", "--embeddings", str(emb), "--labels", str(tmp_path / "labels.parquet"), "--taxonomy",
            str(tmp_path / "taxonomy.json"), "--sessions", str(sessions), "--bundle", str(bundle)]  # fmt: skip
    for extra, want in ((["--inputs", "embedding"], "embedding"), ([], "embedding+text")):
        res = CliRunner().invoke(main, [*args, *extra])
        assert res.exit_code == 0, res.output
        assert seen[-1] == want
        assert IntentClassifier.from_bundle(bundle).inputs == want
        assert json.loads((tmp_path / "distill.json").read_text())["inputs"] == want
        assert f"classifier on {want}" in res.output
