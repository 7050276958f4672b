"""Join sessionized output to the simulator's truth: session id -> true intent.

Truth sessions are keyed by (visitor_id, platform, start): the sessionizer recovers every simulated
session exactly (docs/SIMULATOR.md), and cutting a session (clickintent/cut.py) keeps its start.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def true_intents(sessions: pa.Table, sim_dir: str | Path) -> dict[str, str]:
    """session_id -> primary true intent, for the sessions that have one (not bots, not app sessions)."""
    truth = pq.read_table(
        Path(sim_dir) / "truth" / "sessions.parquet", columns=["visitor_id", "platform", "start", "intent"]
    )
    cols = ("visitor_id", "platform", "start")
    tv, tp, ti = (truth.column(c).to_pylist() for c in ("visitor_id", "platform", "intent"))
    ts = truth.column("start").cast(pa.int64()).to_pylist()
    key = {(v, p, s): i for v, p, s, i in zip(tv, tp, ts, ti, strict=True) if i is not None}
    out = {}
    sess = sessions.select(["session_id", *cols])
    starts = sess.column("start").cast(pa.int64()).to_pylist()
    for sid, v, p, s in zip(sess.column("session_id").to_pylist(), sess.column("visitor_id").to_pylist(),
                            sess.column("platform").to_pylist(), starts, strict=True):  # fmt: skip
        hit = key.get((v, p, s))
        if hit is not None:
            out[sid] = hit
    return out
