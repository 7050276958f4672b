"""Spark jobs that run a model bundle on the executors: `embed_spark` (vectors) and `label_spark` (intents).

Both are one `mapInArrow` job (Arrow batches of (session_id, events) in, Arrow batches out), the same mechanism
as `mapInPandas` without a round trip of the nested `events` column through pandas objects. The bundle is
verified on the driver, shipped once per SparkContext and bundle version (`ship_bundle`), and each Python
worker loads it once; inside a worker the rows go through the very `Embedder` and `Labeller` the in-process
paths use (`encoder/embed.py`, `distill/label.py`), so both engines give the same vectors and labels. Left out:
GPU executors (torch runs on the CPU, one thread per worker), top-k output.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from clickintent.bundle import Bundle, load_bundle
from clickintent.distill.classifier import COMPONENT, IntentClassifier
from clickintent.distill.label import Labeller
from clickintent.encoder.embed import Embedder
from clickintent.encoder.text import default_cache_dir
from clickintent.engines.spark import require_pyspark

EMBED_DDL = "session_id string, embedding array<float>, model_version string"
LABEL_DDL = "session_id string, intent string, confidence float, source string, taxonomy_version string"

# Per Python worker: load a bundle once. Module-level on purpose: cloudpickle ships a closure with a by-value
# copy of the globals it names, so a cache read from inside the job's closure would start empty in every
# task; a function of this module is shipped by reference and sees the worker's real module dict.
_EXECUTOR_EMBEDDERS: dict[tuple[str, str], Embedder] = {}
_EXECUTOR_CLASSIFIERS: dict[str, IntentClassifier] = {}
_SHIPPED: dict[tuple[int, str], str] = {}  # on the driver: (SparkContext id, bundle version) -> shipped name

# What a job does to one batch on a worker: (the unpacked bundle's path, a batch) -> a batch of output rows.
BatchJob = Callable[[str, pa.RecordBatch], pa.RecordBatch]


def embed_spark(spark: Any, sessions: str | Path | Any, bundle: str | Path, out: str | Path | None = None, *,
                batch_size: int | None = None, text_cache: str | Path | None = None) -> Any:  # fmt: skip
    """Embed with Spark: returns the DataFrame (session_id, embedding, model_version), and writes it as a
    Parquet directory at `out` when given. `sessions` is a path or a DataFrame with the SESSIONS columns."""
    b = _verified(bundle)
    job = partial(_embed_batch, text_cache=_cache(text_cache), batch_size=batch_size)
    return map_bundle(spark, sessions, b, job, EMBED_DDL, out)


def label_spark(spark: Any, sessions: str | Path | Any, bundle: str | Path, out: str | Path | None = None, *,
                batch_size: int | None = None, text_cache: str | Path | None = None) -> Any:  # fmt: skip
    """Label with Spark: returns the DataFrame (the LABELS columns, source `distilled`), and writes it as a
    Parquet directory at `out` when given. `sessions` is a path or a DataFrame with the SESSIONS columns."""
    b = _verified(bundle)
    IntentClassifier.from_bundle(b)  # fail on the driver, not in every executor
    version = str(b.component(COMPONENT).get("taxonomy_version", ""))
    job = partial(_label_batch, text_cache=_cache(text_cache), batch_size=batch_size, version=version)
    return map_bundle(spark, sessions, b, job, LABEL_DDL, out)


def map_bundle(
    spark: Any, sessions: str | Path | Any, bundle: Bundle, job: BatchJob, ddl: str, out: str | Path | None
) -> Any:
    """`job` over the (session_id, events) Arrow batches of `sessions` (a path or a DataFrame) with mapInArrow,
    `bundle` shipped to the executors; the result has the Spark schema `ddl`, written as Parquet at `out` if
    given. `job` must pickle by reference (a module-level function, or a `partial` of one)."""
    name = ship_bundle(spark, bundle)
    df = spark.read.parquet(str(sessions)) if isinstance(sessions, str | Path) else sessions

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import SparkFiles

        path = SparkFiles.get(name)
        for rb in batches:
            if rb.num_rows:
                yield job(path, rb)

    result = df.select("session_id", "events").mapInArrow(run, ddl)
    if out is not None:
        result.write.mode("overwrite").parquet(str(out))
    return result


def ship_bundle(spark: Any, bundle: Bundle) -> str:
    """Ship the bundle to every executor as a zip archive (once per SparkContext); returns its SparkFiles name."""
    sc = spark.sparkContext
    key = (id(sc), bundle.version)
    if key not in _SHIPPED:
        # One zip, added as an archive: executors get it unpacked under SparkFiles.get(<zip name>). A
        # directory added as a file works in local mode only (UNSUPPORTED_ADD_FILE.LOCAL_DIRECTORY).
        name = f"clickintent-bundle-{bundle.version}"
        stage = Path(tempfile.mkdtemp(prefix="clickintent-ship-"))
        archive = shutil.make_archive(str(stage / name), "zip", root_dir=bundle.path)
        sc.addArchive(archive)
        _SHIPPED[key] = Path(archive).name
    return _SHIPPED[key]


def _verified(bundle: str | Path) -> Bundle:
    require_pyspark()
    return load_bundle(bundle)  # verify on the driver before shipping


def _cache(text_cache: str | Path | None) -> str:
    """The text-cache path the executors use: the driver's default unless given."""
    return str(text_cache or default_cache_dir())


def _executor_embedder(path: str, text_cache: str, batch_size: int | None) -> Embedder:
    key = (path, text_cache)
    if key not in _EXECUTOR_EMBEDDERS:
        torch.set_num_threads(1)  # one Python worker per core already
        _EXECUTOR_EMBEDDERS[key] = Embedder.from_bundle(path, "cpu", text_cache, batch_size)
    return _EXECUTOR_EMBEDDERS[key]


def _executor_classifier(path: str) -> IntentClassifier:
    if path not in _EXECUTOR_CLASSIFIERS:
        _EXECUTOR_CLASSIFIERS[path] = IntentClassifier.from_bundle(path)
    return _EXECUTOR_CLASSIFIERS[path]


def _embed_batch(path: str, rb: pa.RecordBatch, *, text_cache: str, batch_size: int | None) -> pa.RecordBatch:
    return _executor_embedder(path, text_cache, batch_size).embeddings_batch(rb)


def _label_batch(
    path: str, rb: pa.RecordBatch, *, text_cache: str, batch_size: int | None, version: str
) -> pa.RecordBatch:
    labeller = Labeller(_executor_embedder(path, text_cache, batch_size), _executor_classifier(path), version)
    return labeller.labels_batch(rb)
