"""Spark engine for labelling: the same labels and confidences as the in-process `label_file` (tolerance 1e-5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from clickintent import schema
from clickintent.cli import main
from clickintent.distill.label import label_file
from clickintent.encoder.toy import toy_sessions
from clickintent.engines.spark_bundle import label_spark
from clickintent.serve.toy import toy_bundle

pytestmark = pytest.mark.integration


def by_session(table: pa.Table) -> dict[str, tuple[str, float, str, str]]:
    cols = [table.column(c).to_pylist() for c in ("session_id", "intent", "confidence", "source", "taxonomy_version")]
    return {s: (i, c, src, v) for s, i, c, src, v in zip(*cols, strict=True)}


def assert_same_labels(got: pa.Table, ref: pa.Table) -> None:
    assert got.num_rows == ref.num_rows
    a, b = by_session(got), by_session(ref)
    assert a.keys() == b.keys()
    ids = sorted(b)
    assert [a[s][0] for s in ids] == [b[s][0] for s in ids]  # labels: exactly the same
    conf_a = np.array([a[s][1] for s in ids])
    conf_b = np.array([b[s][1] for s in ids])
    assert np.abs(conf_a - conf_b).max() < 1e-5
    assert {a[s][2:] for s in ids} == {b[s][2:] for s in ids}  # source and taxonomy version


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A toy bundle (encoder + classifier), 150 toy sessions and their in-process labels."""
    root = tmp_path_factory.mktemp("label-spark")
    cache = root / "textcache"
    bundle = toy_bundle(root / "bundle", sessions=240, epochs=1, text_cache=cache)
    table, _ = toy_sessions(150, seed=11, mean_events=7)  # other sessions than the bundle was trained on
    src = root / "sessions.parquet"
    pq.write_table(table, src, row_group_size=40)  # several Arrow batches per Spark task
    ref = root / "labels_local.parquet"
    label_file(src, bundle, ref, device="cpu", chunk_rows=64, text_cache=cache)
    return {"root": root, "bundle": bundle, "sessions": src, "cache": cache, "ref": ref}


def test_label_spark_equals_label_file(spark: Any, labelled: dict[str, Path]) -> None:
    out = labelled["root"] / "labels_spark"
    label_spark(spark, labelled["sessions"], labelled["bundle"], out, batch_size=16, text_cache=labelled["cache"])
    got = pq.read_table(out)
    ref = pq.read_table(labelled["ref"])
    assert got.schema.names == schema.LABELS.names
    assert got.cast(schema.LABELS).schema == schema.LABELS
    assert_same_labels(got, ref)
    assert len(set(ref.column("intent").to_pylist())) > 1  # the check means something: several labels occur
    assert set(got.column("source").to_pylist()) == {"distilled"}


def test_label_cli_spark_engine(
    spark: Any, labelled: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI has no --text-cache; the driver passes the default cache directory to the executors.
    monkeypatch.setenv("CLICKINTENT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "labels_cli"
    # In-process, getOrCreate hands the CLI the session fixture (already local[2]); the CLI must not stop it.
    result = CliRunner().invoke(
        main,
        ["label", str(labelled["sessions"]), "--bundle", str(labelled["bundle"]), "--out", str(out),
         "--engine", "spark", "--spark-master", "local[2]"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "labelled 150 sessions" in result.output
    assert_same_labels(pq.read_table(out), pq.read_table(labelled["ref"]))
    assert not spark.sparkContext._jsc.sc().isStopped()
