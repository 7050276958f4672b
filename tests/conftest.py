"""Shared fixtures: one Spark session per test run, tiny synthetic event tables, the real data sample."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Torch's OpenMP threads spin while waiting; on a loaded 2-core machine that made maths 10-50x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The real YOOCHOOSE sample lives in shared/ beside the repository; it is never copied into the repo.
YOOCHOOSE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "yoochoose-100k"


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local[2] Spark session for the whole run (starting one costs seconds)."""
    from clickintent.engines.spark import get_spark

    session = get_spark("local[2]", app_name="clickintent-tests", **{"spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def yoochoose_dir() -> Path:
    if not YOOCHOOSE_DIR.is_dir():
        pytest.fail(f"real data sample not found at {YOOCHOOSE_DIR} (shared/ must sit beside the repo)")
    return YOOCHOOSE_DIR


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """For the service tests: two toy bundles (encoder + classifier) that differ, a broken one, a text cache."""
    from clickintent.serve.toy import toy_bundle

    root = tmp_path_factory.mktemp("serve-bundles")
    a = toy_bundle(root / "a", sessions=500, epochs=3, seed=0)
    b = toy_bundle(root / "b", sessions=300, epochs=1, seed=1)
    broken = root / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{}")
    (root / "text").mkdir()
    return {"a": a, "b": b, "broken": broken, "text": root / "text"}
