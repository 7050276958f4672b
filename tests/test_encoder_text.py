"""Text vectors: the real MiniLM loads offline from its package, and the disk cache encodes each string once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from clickintent.encoder.text import HashingEncoder, MiniLMEncoder, TextEncoder, TextVectors


class Counting(TextEncoder):
    name = "counting-test"
    dim = 384

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.inner = HashingEncoder()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        return self.inner.encode(texts)


def test_cache_encodes_each_string_once(tmp_path: Path) -> None:
    enc = Counting()
    tv = TextVectors(enc, tmp_path)
    first = tv.lookup(["credit card", "isa rates", "credit card"])
    assert enc.seen == ["credit card", "isa rates"]
    again = TextVectors(enc, tmp_path).lookup(["isa rates", "credit card"])  # a new process: from disk
    assert enc.seen == ["credit card", "isa rates"]
    assert np.array_equal(again, first[[1, 0]])
    assert not any(b"credit" in p.read_bytes() for p in tmp_path.iterdir())  # keys are hashes, not text


@pytest.mark.slow
def test_minilm_loads_offline_and_means_something(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tv = TextVectors(MiniLMEncoder(), tmp_path)
    v = tv.lookup(["credit card with cashback", "cashback credit card offer", "mortgage repayment calculator"])
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_both_levels_of_the_cache_are_bounded(tmp_path: Path) -> None:
    # Issue 17: every cache is bounded. Memory by vectors and bytes (LRU), the file by rows (oldest out).
    import sqlite3

    tv = TextVectors(HashingEncoder(), tmp_path, memory_limit=10**6, memory_bytes=200_000, disk_rows=300)
    texts = [f"title number {i} " + "x" * 100 for i in range(2000)]
    for i in range(0, len(texts), 100):
        tv.lookup(texts[i : i + 100])
    assert tv._memory.nbytes <= 200_000 and 50 < len(tv._memory) < 200
    with sqlite3.connect(tmp_path / "hashing-384.sqlite") as con:
        rows = con.execute("SELECT count(*) FROM vectors").fetchone()[0]
    assert rows <= 300 + 300  # pruned every `disk_rows` writes when that is fewer than DISK_CHECK_EVERY
    before = tv.n_encoded
    assert np.allclose(tv.lookup(texts[-1:]), HashingEncoder().encode(texts[-1:]))  # the newest are kept
    assert tv.n_encoded == before
    tv.lookup(texts[:1])  # the oldest were dropped from both: encoded again
    assert tv.n_encoded == before + 1
    tv.close()
