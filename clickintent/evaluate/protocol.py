"""The evaluation protocol: one time cut, people split into roles, and nothing that learns sees a test person.

`split()` draws, once per run, everything the evaluation is allowed to know about who is used where:

- **one time cut** at `cut` of the data's span. Models fit on what was known before it (a row whose
  outcome window closes after the cut is not a training row) and are scored on decisions after it;
- **representation people** (`representation_share` of all people): their web visits before the cut are the
  only data the encoder, the taxonomy, the LLM labels the distiller learns from, and the distiller see
  (`Split.learning_visits`). They are never scored;
- **evaluation people**, in `folds` folds: the downstream model for fold f is fitted on the other folds'
  rows before the cut and predicts fold f's rows after it; the folds' test predictions are pooled, so every
  evaluation person's decisions after the cut are scored once, by a model that never saw that person.

A person is every cookie, app install and customer id of one human (people.py), so a split never puts two
cookies of one person on different sides. Roles are a hash of the person key and the seed: the same inputs
give the same split in any process. docs/EVALUATION.md explains the choices.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clickintent.evaluate.people import PersonKeys, linked_person_keys, sim_person_keys

REPRESENTATION = -1  # the fold of a representation person


@dataclass(frozen=True)
class Protocol:
    """How a run is split. Every field has the default the reported figures use (docs/EVALUATION.md)."""

    cut: float = 0.6  # the time cut, as a share of the data's span (0.6 of 30 days: day 18)
    representation_share: float = 0.4  # people whose visits before the cut are all that learners see
    folds: int = 5  # evaluation people are split into this many folds (test predictions pooled)
    seed: int = 0  # the roles' hash seed
    bootstrap: int = 1000  # paired bootstrap replicates over evaluation people for every CI

    def __post_init__(self) -> None:
        if not 0.0 < self.cut < 1.0:
            raise ValueError("cut must be between 0 and 1 (a share of the data's time span)")
        if not 0.0 < self.representation_share < 1.0:
            raise ValueError("representation_share must be between 0 and 1")
        if self.folds < 2:
            raise ValueError("folds must be at least 2")


@dataclass
class Split:
    """A drawn split: the cut, who is who, and the helpers every step uses to stay on its side."""

    protocol: Protocol
    start_us: int  # first event of the data
    end_us: int  # last event of the data
    cut_us: int
    keys: PersonKeys

    def fold_of_key(self, key: str) -> int:
        """REPRESENTATION or the evaluation fold of a person key."""
        h = hashlib.md5(f"split:{self.protocol.seed}:{key}".encode()).digest()
        u = int.from_bytes(h[:8], "big") / 2**64
        share = self.protocol.representation_share
        if u < share:
            return REPRESENTATION
        return min(int((u - share) / (1 - share) * self.protocol.folds), self.protocol.folds - 1)

    def folds_of_keys(self, keys: list[str] | np.ndarray) -> np.ndarray:
        cache: dict[str, int] = {}
        out = np.empty(len(keys), np.int64)
        for i, k in enumerate(keys):
            f = cache.get(k)
            if f is None:
                f = cache[k] = self.fold_of_key(k)
            out[i] = f
        return out

    def visitor_keys(self, visitors: list[str] | np.ndarray) -> np.ndarray:
        return np.array([self.keys.of_visitor(v) for v in visitors], dtype=object)

    def customer_keys(self, customers: list[str] | np.ndarray) -> np.ndarray:
        return np.array([self.keys.of_customer(c) for c in customers], dtype=object)

    def learning_visits(self, visits: pa.Table) -> pa.Table:
        """The web visits learners may see: representation people's, ended before the cut."""
        web = visits.filter(pc.equal(visits.column("platform"), "web"))
        folds = self.folds_of_keys(self.visitor_keys(web.column("visitor_id").to_pylist()))
        before = web.column("end").cast(pa.int64()).to_numpy() < self.cut_us
        return web.filter(pa.array((folds == REPRESENTATION) & before))

    def evaluation_visits(self, visits: pa.Table) -> pa.Table:
        """Evaluation people's web visits (any time): where the comparisons' LLM label sample is drawn."""
        web = visits.filter(pc.equal(visits.column("platform"), "web"))
        folds = self.folds_of_keys(self.visitor_keys(web.column("visitor_id").to_pylist()))
        return web.filter(pa.array(folds != REPRESENTATION))

    def to_dict(self) -> dict[str, object]:
        return {
            "protocol": asdict(self.protocol),
            "start_us": self.start_us,
            "end_us": self.end_us,
            "cut_us": self.cut_us,
            "cut": datetime.fromtimestamp(self.cut_us / 1e6, UTC).isoformat(),
            "person_keys": "simulator truth" if any(k.startswith("p:") for k in self.keys.visitors.values())
            else "customer links (logins)",
        }  # fmt: skip

    def save(self, out_dir: str | Path) -> Path:
        """Write split.json (the cut, the protocol) and split-keys.parquet (every known id's person key)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        ids = list(self.keys.visitors) + list(self.keys.customers)
        kinds = ["visitor"] * len(self.keys.visitors) + ["customer"] * len(self.keys.customers)
        keys = list(self.keys.visitors.values()) + list(self.keys.customers.values())
        pq.write_table(pa.table({"id": ids, "kind": kinds, "person_key": keys,
                                 "fold": self.folds_of_keys(keys)}), out / "split-keys.parquet")  # fmt: skip
        path = out / "split.json"
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, out_dir: str | Path) -> Split:
        out = Path(out_dir)
        meta = json.loads((out / "split.json").read_text())
        t = pq.read_table(out / "split-keys.parquet", columns=["id", "kind", "person_key"])
        keys = PersonKeys()
        for i, kind, key in zip(*(t.column(c).to_pylist() for c in t.column_names), strict=True):
            (keys.visitors if kind == "visitor" else keys.customers)[i] = key
        return cls(Protocol(**meta["protocol"]), meta["start_us"], meta["end_us"], meta["cut_us"], keys)


def split(visits: pa.Table, protocol: Protocol | None = None, sim_dir: str | Path | None = None) -> Split:
    """Draw the split for a run's sessions (SESSIONS, web and app). With `sim_dir`, people come from the
    simulator's truth; without, from the customer links in the sessions."""
    protocol = protocol or Protocol()
    if visits.num_rows == 0:
        raise ValueError("no sessions to split")
    start = int(pc.min(visits.column("start")).cast(pa.int64()).as_py())
    end = int(pc.max(visits.column("end")).cast(pa.int64()).as_py())
    keys = sim_person_keys(sim_dir) if sim_dir is not None else linked_person_keys(visits)
    return Split(protocol, start, end, start + int((end - start) * protocol.cut), keys)
