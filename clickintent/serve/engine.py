"""The encoder runtimes the service can serve from: the `Engine` interface and the torch one.

An `Engine` runs the session encoder on a featurized batch and returns unit vectors. `TorchEngine` calls
`SessionEncoder` directly; the ONNX Runtime engine (clickintent.serve.onnx, extra `onnx`) runs a graph
exported from that same forward. serve/model.py chooses between them. What it leaves out: choosing
(serve/model.py `make_engine`) and checking an engine against torch (`ServingModel.load`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

from clickintent.encoder.batches import EventBatch
from clickintent.encoder.model import SessionEncoder


class Engine(ABC):
    """Runs the encoder network on a featurized batch."""

    name: str = ""

    @abstractmethod
    def run(self, batch: EventBatch, mask: np.ndarray | None) -> np.ndarray:
        """Unit session vectors float32 [B, out_dim]; `mask` [B, T] bool hides events behind [MASK]."""


class TorchEngine(Engine):
    name = "torch"

    def __init__(self, model: SessionEncoder) -> None:
        self.model = model.eval()

    def run(self, batch: EventBatch, mask: np.ndarray | None) -> np.ndarray:
        with torch.inference_mode():
            z, _ = self.model(batch, None if mask is None else torch.from_numpy(mask), cls_only=True)
        return z.float().numpy()
