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
