"""Join sessionized output to the simulator's truth: one join, used by everything that reads the truth.

Truth sessions are keyed by (visitor_id, platform, start): the sessionizer recovers every simulated
session exactly (docs/SIMULATOR.md), and cutting a session (clickintent/cut.py) keeps its start.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

KEY = ("visitor_id", "platform", "start")


def join_truth(sessions: pa.Table, sim_dir: str | Path, columns: list[str]) -> tuple[list[str], pa.Table]:
    """(session ids of `sessions` the truth knows, the truth's `columns` for them in the same order)."""
    truth = pq.read_table(Path(sim_dir) / "truth" / "sessions.parquet", columns=[*KEY, *columns])
    index = {
        (v, p, s): i
        for i, (v, p, s) in enumerate(zip(truth.column("visitor_id").to_pylist(), truth.column("platform").to_pylist(),
                                          truth.column("start").cast(pa.int64()).to_pylist(), strict=True))
    }  # fmt: skip
    ids, rows = [], []
    starts = sessions.column("start").cast(pa.int64()).to_pylist()
    for sid, v, p, s in zip(sessions.column("session_id").to_pylist(), sessions.column("visitor_id").to_pylist(),
                            sessions.column("platform").to_pylist(), starts, strict=True):  # fmt: skip
        i = index.get((v, p, s))
        if i is not None:
            ids.append(sid)
            rows.append(i)
    return ids, truth.select(columns).take(pa.array(rows, pa.int64()))


def true_intents(sessions: pa.Table, sim_dir: str | Path) -> dict[str, str]:
    """session_id -> primary true intent, for the sessions that have one (not bots, not app sessions)."""
    ids, truth = join_truth(sessions, sim_dir, ["intent"])
    return {sid: i for sid, i in zip(ids, truth.column("intent").to_pylist(), strict=True) if i is not None}
