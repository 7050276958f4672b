"""Spark engine for batch embedding: the same vectors as the in-process Embedder (tolerance 1e-5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from clickintent.encoder.embed import Embedder
from clickintent.encoder.features import Vocab
from clickintent.encoder.io import save_encoder
from clickintent.encoder.model import EncoderConfig, SessionEncoder
from clickintent.encoder.text import HashingEncoder, TextVectors
from clickintent.encoder.toy import toy_sessions
from clickintent.engines.spark_bundle import embed_spark


@pytest.mark.integration
def test_spark_gives_the_in_process_vectors(spark: Any, tmp_path: Path) -> None:
    table, _ = toy_sessions(120, seed=9, mean_events=6)
    src = tmp_path / "sessions.parquet"
    pq.write_table(table, src, row_group_size=40)
    vocab = Vocab.build(table.slice(0, 80), min_page_count=1, n_page_buckets=32, text_model="hashing-384")
    torch.manual_seed(0)
    model = SessionEncoder(EncoderConfig(d_model=32, n_layers=2, n_heads=4, d_ff=64, out_dim=16).for_vocab(vocab))
    bundle = save_encoder(tmp_path / "bundle", model, vocab)
    cache = tmp_path / "textcache"

    out = tmp_path / "emb_spark"
    embed_spark(spark, src, bundle.path, out, batch_size=16, text_cache=cache)
    got = pq.read_table(out)
    assert got.num_rows == len(table)
    by_id = dict(zip(got.column("session_id").to_pylist(), got.column("embedding").to_pylist(), strict=True))

    local = Embedder.from_bundle(bundle.path, device="cpu", text_cache=cache)
    ref = local.embed_sessions(table)
    spark_vecs = np.array([by_id[s] for s in table.column("session_id").to_pylist()], np.float32)
    assert np.abs(spark_vecs - ref).max() < 1e-5
    assert set(got.column("model_version").to_pylist()) == {local.model_version}
    assert isinstance(TextVectors(HashingEncoder(), cache).lookup(["x"]), np.ndarray)
