"""A persistent answer cache for LLM calls: one SQLite file, keyed by (backend, model, parameters, prompt).

Every validated answer is committed as soon as it arrives, so a step that dies half-way loses nothing it
paid for, and re-running it resumes where it stopped. Keys are SHA-256 digests of the canonical JSON of the
four parts; the prompt itself is not stored (it can be long, and it is rebuilt from the data anyway).
Values are JSON, never pickle. Hit and miss counts are kept for reporting.

Left out: eviction and size limits (delete the file to start over), sharing across machines.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
)
"""


class Cache:
    """SQLite-backed cache of LLM answers. `path=None` keeps it in memory (tests, one-off runs)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            ":memory:" if self.path is None else str(self.path), check_same_thread=False, timeout=30.0
        )
        if self.path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")  # readers never block the one writer
        self._db.execute(_SCHEMA)
        self._db.commit()

    @staticmethod
    def key(backend: str, model: str, params: dict[str, Any], prompt: str) -> str:
        """The cache key: SHA-256 of the canonical JSON of (backend, model, parameters, prompt)."""
        blob = json.dumps([backend, model, params, prompt], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM completions WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        value: dict[str, Any] = json.loads(row[0])
        return value

    def put(self, key: str, backend: str, model: str, response: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?, ?)",
                (key, backend, model, json.dumps(response, ensure_ascii=False), time.time()),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self)}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
