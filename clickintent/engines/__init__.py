"""Engines that run the batch steps: DuckDB in-process (the embedded default) and PySpark (distributed)."""
