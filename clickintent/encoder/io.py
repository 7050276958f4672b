"""Saving the encoder into a bundle and loading it back (safetensors + JSON, never pickle).

The encoder component is three files: `encoder.safetensors` (weights), `encoder.json` (the
`EncoderConfig` and a short training summary) and `vocab.json` (the `Vocab`). Loading checks that the
three agree and raises `BundleError` with the reason when they do not. What it leaves out: ONNX export.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import save

from clickintent.bundle import Bundle, BundleError, add_to_bundle, json_bytes, load_bundle
from clickintent.encoder.features import Vocab
from clickintent.encoder.model import EncoderConfig, SessionEncoder

COMPONENT = "encoder"
WEIGHTS, CONFIG, VOCAB = "encoder.safetensors", "encoder.json", "vocab.json"


def state_bytes(model: SessionEncoder) -> bytes:
    """The model's weights as safetensors bytes (CPU, contiguous)."""
    return save({k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()})


def save_encoder(
    path: str | Path, model: SessionEncoder, vocab: Vocab, summary: dict[str, Any] | None = None
) -> Bundle:
    """Write the encoder component into the bundle at `path` (created if needed)."""
    model.config.check_vocab(vocab)
    files = {
        WEIGHTS: state_bytes(model),
        CONFIG: json_bytes({"config": model.config.to_json(), "summary": summary or {}}),
        VOCAB: json_bytes(vocab.to_json()),
    }
    info = {"text_model": vocab.text_model, "out_dim": model.config.out_dim}
    return add_to_bundle(path, COMPONENT, files, info)


def load_encoder(bundle: Bundle | str | Path) -> tuple[SessionEncoder, Vocab, str]:
    """(model in eval mode on CPU, vocab, encoder version) from a verified bundle."""
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    comp = b.component(COMPONENT)
    try:
        cfg = EncoderConfig.from_json(b.read_json(CONFIG)["config"])
        vocab = Vocab.from_json(b.read_json(VOCAB))
        cfg.check_vocab(vocab)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"encoder files in {b.path} do not agree: {exc}", "the encoder's files do not agree") from exc
    model = SessionEncoder(cfg)
    state = b.read_tensors(WEIGHTS)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(
            f"{WEIGHTS} in {b.path} does not fit {CONFIG}: {str(exc)[:500]}", f"{WEIGHTS} does not fit {CONFIG}"
        ) from exc
    model.eval()
    return model, vocab, str(comp["version"])

