"""The exact ceiling of each task on simulated data: what the world's own probabilities gain from the web.

The simulator writes, beside every outcome, the probabilities it drew it from with the web visit's pull and
without it (docs/SIMULATOR.md): `p_tiles`/`p_tiles_profile` per app home view, `p_apply`/`p_apply_profile`
(and the chance an application is made in the app) per web visit. A task row's ceiling is the log loss of
the profile-only probabilities minus that of the full ones on the row's observed outcome; its mean over the
test rows is the most any feature set can gain over a baseline that knew the profile exactly. This module
reads the visit probabilities and joins them to sessionized visits; the tile probabilities come with the
app views themselves (tasks.py).
Left out: applications from another visit or a tile click that land in a visit's window. The world's
probabilities are those of the visit's own application, and those other applications are most of the
conversion task's positives; their number depends on who the visitor is, which the visit reveals, so a
model can gain on them even at signal 0 (docs/EVALUATION.md, "Diagnosis").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from clickintent.sim.join import join_truth


def visit_probabilities(sessions: pa.Table, sim_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """session id -> (P full, P profile, P(app channel)) over [none, products] for the web visits of
    `sessions` that the simulator's truth knows (not bots)."""
    ids, truth = join_truth(sessions, sim_dir, ["p_apply", "p_apply_profile", "p_app_channel"])
    keep = pa.compute.is_valid(truth.column("p_apply")).to_numpy(zero_copy_only=False)
    ids = [sid for sid, k in zip(ids, keep, strict=True) if k]
    truth = truth.filter(pa.array(keep))
    if not ids:
        return {}
    full = np.asarray(truth.column("p_apply").combine_chunks().flatten(), np.float64).reshape(len(ids), -1)
    prof = np.asarray(truth.column("p_apply_profile").combine_chunks().flatten(), np.float64).reshape(len(ids), -1)
    app = truth.column("p_app_channel").to_numpy()
    return {sid: (full[i], prof[i], float(app[i])) for i, sid in enumerate(ids)}
