"""Training checkpoints of the session encoder: weights, best weights, optimizer state and loop state.

A checkpoint directory holds `model.safetensors`, `best.safetensors` (the best validation weights so far,
when there are any), `optimizer.safetensors` (AdamW's tensors, flattened as "<param id>.<name>") and
`state.json` (the loop's counters, history and param groups). Every file is written to a temporary name
and renamed, and state.json comes last, so a checkpoint exists once state.json does: an interrupted write
leaves the previous checkpoint whole. safetensors and JSON only, never pickle. What it leaves out: deciding
whether a checkpoint belongs to a run (train.py compares its fingerprint) and writing the bundle (io.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from clickintent.encoder.model import SessionEncoder


def save_checkpoint(
    path: Path,
    model: SessionEncoder,
    opt: torch.optim.Optimizer,
    best: dict[str, torch.Tensor] | None,
    state: dict[str, Any],
) -> None:
    """Write the checkpoint directory `path`; `state` is the loop's JSON-able state."""
    path.mkdir(parents=True, exist_ok=True)

    def put(name: str, tensors: dict[str, torch.Tensor]) -> None:
        tmp = path / f".{name}.tmp"
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, path / name)

    put("model.safetensors", model.state_dict())
    if best is not None:
        put("best.safetensors", best)
    osd = opt.state_dict()
    put(
        "optimizer.safetensors",
        {f"{pid}.{k}": v for pid, st in osd["state"].items() for k, v in st.items() if torch.is_tensor(v)},
    )
    state = {**state, "param_groups": osd["param_groups"], "has_best": best is not None}
    tmp = path / ".state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path / "state.json")  # written last: a checkpoint exists once this file does


def load_checkpoint(
    path: Path, model: SessionEncoder, opt: torch.optim.Optimizer, device: torch.device
) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Load `path` into `model` and `opt` (on `device`); returns (loop state, best weights on CPU or None)."""
    state = json.loads((path / "state.json").read_text())
    model.load_state_dict(load_file(str(path / "model.safetensors"), device=str(device)))
    flat = load_file(str(path / "optimizer.safetensors"), device=str(device))
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        pid, name = key.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = value
    for st in opt_state.values():  # AdamW keeps `step` on the CPU unless capturable/fused
        if "step" in st:
            st["step"] = st["step"].cpu()
    opt.load_state_dict({"state": opt_state, "param_groups": state.pop("param_groups")})
    best = load_file(str(path / "best.safetensors"), device="cpu") if state.get("has_best") else None
    return state, best
