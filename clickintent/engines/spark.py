"""PySpark engine: the distributed path for ingest, sessionize and batch embed/label.

`get_spark` builds (or reuses) a SparkSession. For local masters it binds the driver to 127.0.0.1: on
machines with several interfaces Spark otherwise binds to a non-loopback address. PySpark is the `spark`
extra; a missing one fails with the exact pip command.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INSTALL_HINT = "PySpark is not installed. Install the extra: pip install 'clickintent[spark]'"


def require_pyspark() -> Any:
    """Import pyspark or fail with the pip command that installs it."""
    try:
        import pyspark
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise RuntimeError(INSTALL_HINT) from exc
    return pyspark


def get_spark(master: str = "local[*]", app_name: str = "clickintent", **conf: str) -> SparkSession:
    """Return a SparkSession for `master`; local masters bind to 127.0.0.1."""
    require_pyspark()
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", _python()))
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", conf.pop("spark.sql.shuffle.partitions", "8"))
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
    )
    if master.startswith("local"):
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _python() -> str:
    import sys

    return sys.executable
