"""The ONNX graph is the encoder's own forward pass: torch and ONNX Runtime agree on random sessions.

Random sessions of varied lengths (1 event, padding to the longest, a batch with no padding, hidden
events) on a randomly initialised encoder with wide weights, so that any difference between the two
runtimes shows well above float rounding. Needs the `onnx` extra (ONNX Runtime).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clickintent.encoder.batches import EventBatch
from clickintent.encoder.fields import COLUMNS, EMBEDDED
from clickintent.encoder.model import EncoderConfig, EventEmbedding, SessionEncoder
from clickintent.serve.engine import TorchEngine

pytest.importorskip("onnxruntime")

from clickintent.serve.onnx import OnnxEngine

CFG = EncoderConfig(n_page_ids=50, n_url_buckets=40, text_dim=12, max_events=16, d_model=32, n_heads=4, d_ff=48,
                    out_dim=8, n_layers=2)  # fmt: skip
TOL = 1e-5


def random_model(seed: int = 0) -> SessionEncoder:
    torch.manual_seed(seed)
    model = SessionEncoder(CFG)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5)  # wide weights: small differences would grow, not vanish
    return model.eval()


def random_batch(lengths: list[int], rng: np.random.Generator) -> EventBatch:
    """Sessions with these lengths, padded to the longest: random ids at events, 0 at padding."""
    B, T = len(lengths), max(lengths)
    real = np.arange(T)[None, :] < np.array(lengths)[:, None]
    U, S, K = 7, 9, 5

    def ids(high: int, low: int = 1) -> torch.Tensor:
        return torch.from_numpy(np.where(real, rng.integers(low, high, (B, T)), 0))

    tokens = rng.integers(1, CFG.n_url_buckets, (U, K)) * (rng.random((U, K)) < 0.7)  # some pages have few tokens
    tokens[0] = 0  # row 0: no page
    text = rng.normal(size=(S, CFG.text_dim)).astype(np.float32)
    text[0] = 0.0  # row 0: no text
    sizes = {"url": U, "title": S, "query": S, "page_bucket": CFG.n_page_ids}
    sizes.update({f.name: CFG.n_ids(f) for f in EMBEDDED})
    low = {"url": 0, "title": 0, "query": 0}  # table rows: 0 is "no page" / "no text"
    return EventBatch({c: ids(sizes[c], low.get(c, 1)) for c in COLUMNS}, torch.tensor(lengths),
                      torch.from_numpy(tokens), torch.from_numpy(text))  # fmt: skip


@pytest.fixture(scope="module")
def engines() -> tuple[TorchEngine, OnnxEngine]:
    model = random_model()
    return TorchEngine(model), OnnxEngine.export(model)


@pytest.mark.parametrize(
    "lengths",
    [[1], [1, 1], [5, 1, 16, 3], [4, 4, 4], [16] * 3, [2, 9, 1, 1, 7, 12, 3, 16]],
    ids=["one-event", "two-singles", "padded", "no-padding", "full-length", "mixed"],
)
def test_torch_and_onnx_agree(engines: tuple[TorchEngine, OnnxEngine], lengths: list[int]) -> None:
    ref, onnx = engines
    rng = np.random.default_rng(len(lengths) * 100 + max(lengths))
    batch = random_batch(lengths, rng)
    hidden = (rng.random(tuple(batch.page.shape)) < 0.3) & batch.padding.logical_not().numpy()
    hidden[0, 0] = True  # at least one hidden event, also in a batch of single events
    for mask in (None, hidden):
        want = ref.run(batch, mask)
        got = onnx.run(batch, mask)
        assert got.shape == want.shape == (len(lengths), CFG.out_dim)
        assert np.abs(got - want).max() < TOL
    assert np.abs(ref.run(batch, hidden) - ref.run(batch, None)).max() > 1e-3  # the mask matters


def test_export_follows_the_models_forward() -> None:
    """A change to the model's forward reaches the ONNX graph (a hand-written copy would not follow)."""

    class Doubled(EventEmbedding):
        def forward(self, b: EventBatch, mask: torch.Tensor | None = None) -> torch.Tensor:
            return 2.0 * super().forward(b, mask)

    model = random_model()
    changed = Doubled(CFG)
    changed.load_state_dict(model.embed_events.state_dict())
    model.embed_events = changed
    batch = random_batch([3, 6, 1], np.random.default_rng(1))
    want = TorchEngine(model).run(batch, None)
    assert np.abs(want - TorchEngine(random_model()).run(batch, None)).max() > 1e-3
    assert np.abs(OnnxEngine.export(model).run(batch, None) - want).max() < TOL
