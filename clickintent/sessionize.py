"""`sessionize`: events.parquet -> sessions.parquet, in SQL that DuckDB and Spark both run.

Rules, per visitor and platform, events ordered by time: a new session starts after an inactivity gap
(default 30 min), every `max_duration` from the first event of a visit (default 12 h), and every
`max_events` events (default 512; the rest continues in a new session). Events that arrive with a
source `session_id` keep it: the gap rule is not applied to them, the duration and count cuts are
(pieces get `~SPAN-CHUNK` suffixes). `dwell_ms`, when missing, is the time to the next event of the
session. A `login` event carrying a `customer_id` links its whole session to that customer (app
events carry the customer on every event). Session ids are stable: a hash of visitor, platform and
the piece's first timestamp, so the same input always gives the same ids.

The query is one template with a few dialect words filled in per engine; DuckDB runs it in-process
under a memory limit (spilling to disk), `clickintent.engines.spark` runs it on a Spark cluster.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from queue import Queue
from threading import Thread
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clickintent import schema
from clickintent.inputs import EVENTS, resolve_rows


@dataclass(frozen=True)
class SessionizeOptions:
    gap_minutes: float = 30.0  # inactivity that ends a session
    max_duration_hours: float = 12.0  # a visit is cut every this many hours from its first event
    max_events: int = 512  # at most this many events per session; the rest continues in a new one
    memory_limit: str = "2GB"  # DuckDB's limit when it must sort; it spills to disk beyond
    threads: int = 2
    batch_rows: int = 500_000  # events cut per step; memory is bounded by this plus one visitor


@dataclass
class SessionizeReport:
    engine: str
    events: int
    sessions: int
    linked_sessions: int  # sessions linked to a customer by a login
    seconds: float
    output: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DIALECTS = {
    "duckdb": {"epoch_us": "epoch_us", "div": "//", "str": "VARCHAR", "q": '"'},
    "spark": {"epoch_us": "unix_micros", "div": "div", "str": "STRING", "q": "`"},
}

ORDER = schema.EVENTS_ORDER
EVENT_ORDER = ORDER.split(", ", 3)[3]  # the order of events inside one visitor's stream
SORTED_KEY = schema.SORTED_KEY

_SQL = """
WITH src AS (
  SELECT *, coalesce(session_id, '') AS _src FROM {events}
),
gaps AS (
  SELECT *, {epoch_us}(ts) - {epoch_us}(lag(ts) OVER (PARTITION BY visitor_id, platform, _src ORDER BY {order})) AS _gap
  FROM src
),
visits AS (
  SELECT *, sum(CASE WHEN _gap IS NULL OR (_src = '' AND _gap > {gap_us}) THEN 1 ELSE 0 END)
    OVER (PARTITION BY visitor_id, platform, _src ORDER BY {order} ROWS UNBOUNDED PRECEDING) AS _visit
  FROM gaps
),
spans AS (
  SELECT *,
    ({epoch_us}(ts) - min({epoch_us}(ts)) OVER (PARTITION BY visitor_id, platform, _src, _visit))
      {div} {max_us} AS _span
  FROM visits
),
pieces AS (
  SELECT *,
    row_number() OVER (PARTITION BY visitor_id, platform, _src, _visit, _span ORDER BY {order}) - 1 AS _rank,
    min({epoch_us}(ts)) OVER (PARTITION BY visitor_id, platform, _src, _visit, _span) AS _piece_start
  FROM spans
),
keyed AS (
  SELECT *,
    CASE
      WHEN _src <> '' AND _span = 0 AND _rank < {max_events} THEN _src
      WHEN _src <> '' THEN concat(_src, '~', CAST(_span AS {str}), '-', CAST(_rank {div} {max_events} AS {str}))
      ELSE substr(md5(concat_ws('|', visitor_id, platform, CAST(_piece_start AS {str}),
                                CAST(_rank {div} {max_events} AS {str}))), 1, 20)
    END AS _sid,
    (_rank % {max_events}) AS _pos
  FROM pieces
),
dwelled AS (
  SELECT *,
    coalesce(dwell_ms,
             ({epoch_us}(lead(ts) OVER (PARTITION BY _sid ORDER BY _pos)) - {epoch_us}(ts)) {div} 1000) AS _dwell
  FROM keyed
)
SELECT
  _sid AS session_id,
  min(visitor_id) AS visitor_id,
  min_by(customer_id, _pos)
    FILTER (WHERE customer_id IS NOT NULL AND (event_type = 'login' OR platform = 'app')) AS customer_id,
  min(platform) AS platform,
  min(ts) AS start,
  max(ts) AS {q}end{q},
  CAST(count(*) AS INT) AS n_events,
  {events_list} AS events
FROM dwelled
GROUP BY _sid
"""

EVENTS_LIST = {
    "duckdb": "list(struct_pack("
    + ", ".join(f"{f} := {f if f != 'dwell_ms' else '_dwell'}" for f in schema.SESSION_EVENT_FIELDS)
    + ") ORDER BY _pos)",
    "spark": "transform(array_sort(collect_list(struct(_pos, struct("
    + ", ".join(f"{f if f != 'dwell_ms' else '_dwell'} AS {f}" for f in schema.SESSION_EVENT_FIELDS)
    + ") AS e))), x -> x.e)",
}


def sessionize_sql(engine: str, events: str, options: SessionizeOptions) -> str:
    """The sessionizing query for `engine` ('duckdb' or 'spark') reading the relation `events`."""
    words = DIALECTS[engine]
    return _SQL.format(
        events=events,
        order=EVENT_ORDER,
        gap_us=int(options.gap_minutes * 60e6),
        max_us=int(options.max_duration_hours * 3600e6),
        max_events=int(options.max_events),
        events_list=EVENTS_LIST[engine],
        **words,
    )


def sessionize(
    events_path: str | Path, out_path: str | Path, options: SessionizeOptions | None = None
) -> SessionizeReport:
    """Sessionize an events.parquet file (or the folder ingest wrote) into sessions.parquet, with DuckDB.

    Reads the events in the order of `ORDER` (ingest writes them that way and says so in the file's
    metadata; any other file is sorted by DuckDB, which spills to disk under `memory_limit`), then
    cuts the ordered stream into sessions batch by batch with vectorised numpy, so memory stays
    bounded by the batch size plus one visitor's events.
    """
    options = options or SessionizeOptions()
    _check(options)
    started = time.perf_counter()
    # The events file, or the folder ingest wrote it in; refused with a clear message when it is anything
    # else (quarantine.parquet, sessions) or holds no events.
    events_path = resolve_rows(events_path, EVENTS, "sessionize")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"memory_limit": options.memory_limit, "threads": options.threads})
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET temp_directory = '{out.parent / '.duckdb-spill'}'")
    ids_con = duckdb.connect()  # its own connection: `con` may be streaming sorted rows in another thread
    # Text columns travel dictionary-encoded from the events file to the sessions file (3x faster to
    # read, 1.5x to write); without the Arrow schema stored, every reader sees plain strings.
    partial = out.with_name(out.name + ".partial")  # moved into place only when every session is written
    writer = pq.ParquetWriter(
        partial, _WRITE_SCHEMA, compression="lz4", store_schema=False, write_statistics=list(_STAT_COLUMNS)
    )
    totals = [0, 0, 0]  # events, sessions, linked sessions

    def write(sessions: pa.Table) -> None:
        writer.write_table(sessions, row_group_size=100_000)
        totals[0] += int(pc.sum(sessions.column("n_events")).as_py() or 0)
        totals[1] += sessions.num_rows
        totals[2] += sessions.num_rows - sessions.column("customer_id").null_count

    # Three stages on two cores: read ahead, cut, and write the previous batch while cutting the next.
    with ThreadPoolExecutor(max_workers=1) as writer_pool:
        pending: Future[None] | None = None
        done_ok = False
        try:
            for done in _whole_groups(_prefetch(_ordered_batches(con, events_path, options.batch_rows))):
                sessions = cut_sessions(done, options, ids_con)
                if pending is not None:
                    pending.result()
                pending = writer_pool.submit(write, sessions)
            if pending is not None:
                pending.result()
            done_ok = True
        finally:
            writer.close()
            con.close()
            ids_con.close()
            if done_ok:
                partial.replace(out)
            else:
                partial.unlink(missing_ok=True)
    n_events, n_sessions, n_linked = totals
    return SessionizeReport(
        engine="duckdb",
        events=n_events,
        sessions=n_sessions,
        linked_sessions=n_linked,
        seconds=round(time.perf_counter() - started, 3),
        output=str(out),
    )


# Repetitive text columns read and written as Arrow dictionaries; statistics only on top-level columns.
_DICT_COLUMNS = ("url", "page", "page_title", "event_type", "device", "referrer", "search_query")
_STAT_COLUMNS = ("session_id", "visitor_id", "customer_id", "platform", "start", "end", "n_events")


def _dict_type(field: pa.Field) -> pa.Field:
    return field.with_type(pa.dictionary(pa.int32(), pa.string())) if field.name in _DICT_COLUMNS else field


_READ_SCHEMA = pa.schema([_dict_type(f) for f in schema.EVENTS])
_EVENT_STRUCT = pa.struct([_dict_type(f) for f in schema.SESSION_EVENT])
_WRITE_SCHEMA = schema.SESSIONS.set(
    schema.SESSIONS.get_field_index("events"), pa.field("events", pa.list_(_EVENT_STRUCT), nullable=False)
)


def _ordered_batches(con: duckdb.DuckDBPyConnection, path: Path, batch_rows: int) -> Iterator[pa.RecordBatch]:
    if path.is_file() and _is_ordered(path):
        yield from pq.ParquetFile(path, read_dictionary=_DICT_COLUMNS).iter_batches(batch_size=batch_rows)
        return
    source = path / "*.parquet" if path.is_dir() else path  # a Spark part-file directory: its parts only
    rel = con.sql(f"SELECT {', '.join(schema.EVENTS.names)} FROM read_parquet('{source}') ORDER BY {ORDER}")
    yield from rel.to_arrow_reader(batch_rows)


def _prefetch(batches: Iterator[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """Read the next batches in a background thread (Arrow releases the GIL while decoding)."""
    queue: Queue[pa.RecordBatch | BaseException | None] = Queue(maxsize=depth)

    def produce() -> None:
        try:
            for batch in batches:
                queue.put(batch)
            queue.put(None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            queue.put(exc)

    thread = Thread(target=produce, daemon=True)
    thread.start()
    while (item := queue.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        yield item
    thread.join()


def _gather(batches: Iterator[pa.RecordBatch], min_rows: int) -> Iterator[pa.Table]:
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        pending.append(batch)
        rows += batch.num_rows
        if rows >= min_rows:
            yield pa.Table.from_batches(pending).select(_READ_SCHEMA.names).cast(_READ_SCHEMA)
            pending, rows = [], 0
    if pending:
        yield pa.Table.from_batches(pending).select(_READ_SCHEMA.names).cast(_READ_SCHEMA)


def _whole_groups(batches: Iterator[pa.RecordBatch], min_rows: int = 400_000) -> Iterator[pa.Table]:
    """Re-cut batches so that no (visitor, platform, source session) group spans two of them.

    Small batches (Parquet row groups can be small) are gathered to `min_rows` first: each cut has a
    fixed cost."""
    carry: pa.Table | None = None
    for table in _gather(batches, min_rows):
        if carry is not None and carry.num_rows:
            table = pa.concat_tables([carry, table])
        if table.num_rows == 0:
            continue
        done, carry = _split_last_group(table)
        if done.num_rows:
            yield done
    if carry is not None and carry.num_rows:
        yield carry


def _is_ordered(path: Path) -> bool:
    metadata = pq.ParquetFile(path).schema_arrow.metadata or {}
    return metadata.get(SORTED_KEY.encode()) == ORDER.encode()


def _group_columns(table: pa.Table) -> list[pa.Array]:
    src = pc.fill_null(table.column("session_id"), "").combine_chunks()
    return [table.column("visitor_id").combine_chunks(), table.column("platform").combine_chunks(), src]


def _group_change(columns: list[pa.Array]) -> np.ndarray:
    """True where a row starts a new (visitor, platform, source session) group, by vectorised compares."""
    n = len(columns[0])
    change = np.zeros(n, dtype=bool)
    change[:1] = True
    if n > 1:
        for col in columns:
            change[1:] |= pc.not_equal(col.slice(1), col.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    return change


def _split_last_group(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Split off the last (visitor, platform, source session) group: it may go on in the next batch."""
    starts = np.flatnonzero(_group_change(_group_columns(table)))
    cut = int(starts[-1])  # groups are contiguous in the ordered stream
    return table.slice(0, cut), table.slice(cut)


_IDS_SQL = """
SELECT CASE
  WHEN src <> '' AND span = 0 AND chunk = 0 THEN src
  WHEN src <> '' THEN concat(src, '~', CAST(span AS VARCHAR), '-', CAST(chunk AS VARCHAR))
  ELSE substr(md5(concat_ws('|', visitor_id, platform,
                            CAST(piece_start AS VARCHAR), CAST(chunk AS VARCHAR))), 1, 20)
END AS session_id FROM keys
"""


def cut_sessions(
    events: pa.Table, options: SessionizeOptions, con: duckdb.DuckDBPyConnection | None = None
) -> pa.Table:
    """Cut events that are ordered by `ORDER` and hold whole visitor groups into sessions (vectorised)."""
    n = events.num_rows
    idx = np.arange(n)
    visitor, platform, src = _group_columns(events)
    ts = events.column("ts").cast(pa.int64()).to_numpy()
    gap = np.diff(ts, prepend=ts[:1])
    has_src = pc.not_equal(src, "").to_numpy(zero_copy_only=False)
    new_visit = _group_change([visitor, platform, src]) | (~has_src & (gap > int(options.gap_minutes * 60e6)))
    visit_start = np.maximum.accumulate(np.where(new_visit, idx, 0))
    span = (ts - ts[visit_start]) // int(options.max_duration_hours * 3600e6)
    new_piece = new_visit.copy()
    new_piece[1:] |= span[1:] != span[:-1]
    piece_start = np.maximum.accumulate(np.where(new_piece, idx, 0))
    rank = idx - piece_start
    starts = np.flatnonzero(new_piece | (rank % options.max_events == 0))
    ends = np.r_[starts[1:], n]
    first = pa.array(starts)

    keys = pa.table(
        {
            "visitor_id": visitor.take(first),
            "platform": platform.take(first),
            "src": src.take(first),
            "span": span[starts],
            "chunk": rank[starts] // options.max_events,
            "piece_start": ts[piece_start[starts]],
        }
    )
    db = con or duckdb.connect()  # md5 in DuckDB: vectorised, and the same function Spark uses
    db.register("keys", keys)
    session_ids = db.sql(_IDS_SQL).to_arrow_table().column("session_id").combine_chunks()
    db.unregister("keys")

    last = np.zeros(n, dtype=bool)
    last[ends - 1] = True
    derived = np.where(last, 0, (np.r_[ts[1:], 0] - ts) // 1000)
    dwell = pc.coalesce(events.column("dwell_ms").combine_chunks(), pa.array(derived, pa.int64(), mask=last))

    customer = events.column("customer_id").combine_chunks()
    is_login = pc.equal(events.column("event_type").cast(pa.string()), "login")
    login_or_app = pc.or_(is_login, pc.equal(platform, "app"))
    eligible = pc.and_(pc.is_valid(customer), login_or_app).to_numpy(zero_copy_only=False)
    first_eligible = np.minimum.reduceat(np.where(eligible, idx, n), starts)
    customers = pa.concat_arrays([customer, pa.nulls(1, pa.string())]).take(pa.array(first_eligible))

    fields = [dwell if f == "dwell_ms" else events.column(f).combine_chunks() for f in schema.SESSION_EVENT_FIELDS]
    struct = pa.StructArray.from_arrays(fields, fields=list(_EVENT_STRUCT))
    ts_col = events.column("ts").combine_chunks()
    return pa.Table.from_pydict(
        {
            "session_id": session_ids,
            "visitor_id": visitor.take(first),
            "customer_id": customers,
            "platform": platform.take(first),
            "start": ts_col.take(first),
            "end": ts_col.take(pa.array(ends - 1)),
            "n_events": pa.array(ends - starts, pa.int32()),
            "events": pa.ListArray.from_arrays(pa.array(np.r_[starts, n], pa.int32()), struct),
        },
        schema=_WRITE_SCHEMA,
    )


def _check(options: SessionizeOptions) -> None:
    if options.gap_minutes <= 0 or options.max_duration_hours <= 0 or options.max_events < 1:
        raise ValueError("gap, maximum duration and maximum events must all be positive")
