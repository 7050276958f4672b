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

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


def arrow_type(shape: Shape) -> pa.DataType | None:
    """The Arrow type of a shape, or None where Arrow's JSON reader cannot read it (free-form JSON)."""
    if isinstance(shape, list):
        inner = arrow_type(shape[0])
        return None if inner is None else pa.list_(inner)
    if isinstance(shape, dict):
        fields = {k: arrow_type(v) for k, v in shape.items()}
        known = {k: t for k, t in fields.items() if t is not None}
        return pa.struct(list(known.items())) if len(known) == len(fields) else None
    return {VARCHAR: pa.string(), "DOUBLE": pa.float64(), "BIGINT": pa.int64()}.get(shape)


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


def keyed(column: str, key: str) -> str:
    """The text of `key` in the {key, value} list `column` (a Preset.keyed column; null where absent)."""
    return f"{ident(column + '#values')}[list_position({ident(column + '#keys')}, {literal(key)})]"


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
    # A list of {key, value} structs -> (its shape, SQL for an element's key and for its value as text, over
    # `p`); `keyed(column, key)` reads one key, and so does `--map url=event_params.page_location`.
    keyed: Mapping[str, tuple[Shape, str, str]] = field(default_factory=dict)

    def override(self, path: str) -> tuple[str, str, Shape]:
        """SQL for a --map source: a column, `COLUMN.a.b` inside a JSON column, or a key of a keyed list.

        Returns (expression, top-level column, the type that column must be read as)."""
        if any(not part for part in path.split(".")):
            raise ValueError(f"--map source {path!r} is not COLUMN or COLUMN.key.key")
        top, _, rest = path.partition(".")
        if not rest:
            return f"CAST({ident(top)} AS VARCHAR)", top, self.columns.get(top, VARCHAR)
        if top in self.keyed:
            return keyed(top, rest), top, self.keyed[top][0]
        return jpath(top, *rest.split(".")), top, JSON

    def plan(self, mapping: Mapping[str, str]) -> tuple[dict[str, str], dict[str, Shape]]:
        """(contract column -> SQL, source column -> type) with the --map overrides applied."""
        fields = dict(self.fields)
        columns = dict(self.columns)
        for contract, source in mapping.items():  # --map overrides the preset, field by field
            fields[contract], top, kind = self.override(source)
            columns[top] = kind if kind == JSON or top in self.keyed else columns.get(top, VARCHAR)
        return fields, columns

    def apply(self, batch: pa.RecordBatch, mapping: Mapping[str, str]) -> tuple[pa.RecordBatch, np.ndarray | None]:
        """(the batch in contract columns, the exclusion reason of each row or None)."""
        fields, columns = self.plan(mapping)
        con = connection()
        try:
            con.register("raw", pa.Table.from_batches([batch]))
            raw = con.sql("SELECT * FROM raw")
            present = dict(zip(raw.columns, raw.types, strict=True))
            norm = ", ".join(f"{_normalise(con, c, t, present.get(c))} AS {ident(c)}" for c, t in columns.items())
            outputs = [f"CAST({sql} AS VARCHAR) AS {ident(c)}" for c, sql in fields.items()]
            if self.exclude:
                outputs.append(f"CAST({self.exclude} AS VARCHAR) AS _excluded")
            if self.ts_unit in _EPOCH and "ts" not in mapping:
                outputs.append(f"TRY_CAST({fields['ts']} AS BIGINT) AS _epoch")
            # each keyed list once as two lists, keys and values as text, so a key is a list_position away
            lists = "".join(
                f", list_transform({ident(c)}, p -> {k}) AS {ident(c + '#keys')}, "
                f"list_transform({ident(c)}, p -> {v}) AS {ident(c + '#values')}"
                for c, (_, k, v) in self.keyed.items()
                if c in columns
            )
            query = (
                f"WITH src AS (SELECT {norm} FROM raw), keyed AS (SELECT *{lists} FROM src) "
                f"SELECT {', '.join(outputs)} FROM keyed"
            )
            table = con.sql(query).to_arrow_table()
        finally:
            con.unregister("raw")
        excluded = None
        if self.exclude:
            excluded = np.array(table.column("_excluded").to_pylist(), dtype=object)
            table = table.drop_columns(["_excluded"])
        if "_epoch" in table.column_names:
            table = _as_timestamps(table, _EPOCH[self.ts_unit])
        return _one_batch(table), excluded


_EPOCH = {"s": 1_000_000, "ms": 1_000, "us": 1}  # microseconds per unit


def _as_timestamps(table: pa.Table, factor: int) -> pa.Table:
    """`ts` as timestamps when every epoch in the batch is a whole number (GA4's, Adobe's), sparing the
    text parse; otherwise the text stays, so transform_batch says what is wrong with it as it always does."""
    epoch = table.column("_epoch")
    table = table.drop_columns(["_epoch"])
    if epoch.null_count != table.column("ts").null_count:
        return table
    try:
        micros = pc.multiply_checked(epoch, factor)
    except pa.ArrowInvalid:  # overflow: far out of range, which the text path reports
        return table
    return table.set_column(table.column_names.index("ts"), "ts", micros.cast(pa.timestamp("us", tz="UTC")))


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
    try:  # the same fields with other leaf types (Parquet's int64 for text): a plain cast
        con.sql(f"SELECT CAST({q} AS {declared}) FROM raw LIMIT 0").fetchall()
        return f"try_cast({q} AS {declared})"
    except duckdb.Error:
        return f"try_cast(to_json({q}) AS {declared})"


_local = threading.local()


def connection() -> duckdb.DuckDBPyConnection:
    """This thread's DuckDB connection (opening one per batch cost more than the query)."""
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect()
    return con


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    table = table.combine_chunks()
    batches = table.to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)
