"""What an import preset is, and how one is applied to a batch: one DuckDB query per batch.

A preset names the source columns it reads, each with the DuckDB type it is read as (`VARCHAR`, `JSON`
for a free-form object, or a nested type such as GA4's `event_params`), and gives one SQL expression per
contract column over them. `Preset.apply` registers a raw Arrow batch in DuckDB, brings every source
column to its declared type whatever form it arrived in (JSON text from a CSV or from Spark's JSON reader,
nested Arrow from Parquet or from the NDJSON reader, numbers), evaluates the expressions and returns the
batch under contract column names, plus the reason the tool itself excludes a row (Adobe) or None.

Because `transform_batch` calls this on both engines, DuckDB and Spark make the same rows from a preset.
What it leaves out: validation, timestamp parsing and redaction, which `transform_batch` does next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa

JSON = "JSON"  # a free-form object, kept as JSON text and read with json_extract_string
VARCHAR = "VARCHAR"
# How a source column is read: VARCHAR, JSON, another DuckDB scalar type, or a nested shape written as
# json_transform writes structures ({"field": shape} a struct, [shape] a list), e.g. GA4's event_params.
Shape = str | dict[str, "Shape"] | list["Shape"]


def duck_type(shape: Shape) -> str:
    """The DuckDB type of a shape (JSON text is VARCHAR)."""
    if isinstance(shape, list):
        return duck_type(shape[0]) + "[]"
    if isinstance(shape, dict):
        return "STRUCT(" + ", ".join(f"{ident(k)} {duck_type(v)}" for k, v in shape.items()) + ")"
    return VARCHAR if shape == JSON else shape


def json_shape(shape: Shape) -> Shape:
    """The shape as json_transform reads it (a free-form object becomes its JSON text)."""
    if isinstance(shape, list):
        return [json_shape(shape[0])]
    if isinstance(shape, dict):
        return {k: json_shape(v) for k, v in shape.items()}
    return VARCHAR if shape == JSON else shape


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def jpath(column: str, *keys: str) -> str:
    """The text at `column`.keys[0].keys[1]... of a JSON column (null where absent)."""
    path = "$" + "".join('."' + k.replace("\\", "\\\\").replace('"', '\\"') + '"' for k in keys)
    return f"json_extract_string({ident(column)}, {literal(path)})"


@dataclass(frozen=True)
class Preset:
    """One analytics tool's export mapped onto the events contract."""

    name: str  # the --preset value
    title: str  # what the export is, for messages and docs
    ts_unit: str  # unit of the timestamp the `ts` expression returns (s|ms|us|iso)
    columns: Mapping[str, Shape]  # source column -> how it is read
    required: tuple[str, ...]  # source columns a file must have
    fields: Mapping[str, str]  # contract column -> SQL expression over the source columns
    exclude: str | None = None  # SQL: why the tool itself excludes a row (null: the row is kept)
    # A column of {key, value} pairs -> (its type, SQL template for one key's value): with such a column
    # `--map url=event_params.page_location` reads one key of it.
    keyed: Mapping[str, tuple[Shape, str]] = field(default_factory=dict)

    def override(self, path: str) -> tuple[str, str, Shape]:
        """SQL for a --map source: a column, `COLUMN.a.b` inside a JSON column, or a key of a keyed list.

        Returns (expression, top-level column, the type that column must be read as)."""
        if any(not part for part in path.split(".")):
            raise ValueError(f"--map source {path!r} is not COLUMN or COLUMN.key.key")
        top, _, rest = path.partition(".")
        if not rest:
            return f"CAST({ident(top)} AS VARCHAR)", top, self.columns.get(top, VARCHAR)
        if top in self.keyed:
            kind, template = self.keyed[top]
            return template.format(key=literal(rest)), top, kind
        return jpath(top, *rest.split(".")), top, JSON

    def plan(self, mapping: Mapping[str, str]) -> tuple[dict[str, str], dict[str, Shape]]:
        """(contract column -> SQL, source column -> type) with the --map overrides applied."""
        fields = dict(self.fields)
        columns = dict(self.columns)
        for contract, source in mapping.items():  # --map overrides the preset, field by field
            fields[contract], top, kind = self.override(source)
            columns[top] = kind if columns.get(top, VARCHAR) in (VARCHAR, JSON) else columns[top]
        return fields, columns

    def apply(self, batch: pa.RecordBatch, mapping: Mapping[str, str]) -> tuple[pa.RecordBatch, np.ndarray | None]:
        """(the batch in contract columns, the exclusion reason of each row or None)."""
        fields, columns = self.plan(mapping)
        con = duckdb.connect()
        try:
            con.register("raw", pa.Table.from_batches([batch]))
            raw = con.sql("SELECT * FROM raw")
            present = dict(zip(raw.columns, raw.types, strict=True))
            norm = ", ".join(f"{_normalise(con, c, t, present.get(c))} AS {ident(c)}" for c, t in columns.items())
            outputs = [f"CAST({sql} AS VARCHAR) AS {ident(c)}" for c, sql in fields.items()]
            if self.exclude:
                outputs.append(f"CAST({self.exclude} AS VARCHAR) AS _excluded")
            query = f"WITH src AS (SELECT {norm} FROM raw) SELECT {', '.join(outputs)} FROM src"
            table = con.sql(query).to_arrow_table()
        finally:
            con.close()
        excluded = None
        if self.exclude:
            excluded = np.array(table.column("_excluded").to_pylist(), dtype=object)
            table = table.drop_columns(["_excluded"])
        return _one_batch(table), excluded


def _normalise(con: duckdb.DuckDBPyConnection, name: str, shape: Shape, present: object) -> str:
    """SQL that reads source column `name` as `shape`, whatever type it arrived as (absent: null)."""
    q, declared = ident(name), duck_type(shape)
    if present is None:
        return f"CAST(NULL AS {declared})"
    kind = str(present)
    nested = kind.endswith("]") or kind.startswith(("STRUCT", "MAP", "JSON"))
    if shape in (VARCHAR, JSON):
        if kind == "VARCHAR":
            return f"nullif({q}, '')"
        return f"CAST(to_json({q}) AS VARCHAR)" if nested else f"CAST({q} AS VARCHAR)"
    if kind == str(con.sql(f"SELECT CAST(NULL AS {declared})").types[0]):
        return q
    if kind == "VARCHAR":  # JSON text (a CSV column, Spark's JSON reader): parse it, null if it is not JSON
        return f"try_cast(try_cast({q} AS JSON) AS {declared})"
    return f"try_cast(to_json({q}) AS {declared})"


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    table = table.combine_chunks()
    batches = table.to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)
