"""Import presets: each tool's sample export (written from its published schema) round-trips.

For every preset: rows in = events + quarantined + duplicates; the sessions are the sample's sessions;
login-linked sessions carry their customer id; searches keep their terms; bad rows are quarantined in the
generic reader's words. The Spark path makes the same rows (integration).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from clickintent import schema
from clickintent.cli import main as cli
from clickintent.ingest import IngestError, IngestOptions, ingest
from clickintent.ingest.presets import readers as preset_readers
from clickintent.ingest.presets import samples
from clickintent.sessionize import sessionize

HITS = samples.journeys()


def _rudderstack(hits: list[samples.Hit], path: Path, seed: int = 0) -> Path:
    return samples.write_segment(hits, path, seed, rudderstack=True)


# (id, preset, writer, file name, --map overrides, quarantined rows)
VARIANTS: list[tuple[str, str, Callable[..., Path], str, dict[str, str], int]] = [
    ("ga4-ndjson", "ga4", samples.write_ga4, "events_20240301.json", {}, 1),
    ("ga4-parquet", "ga4", samples.write_ga4_parquet, "events_20240301.parquet", {}, 0),
    ("snowplow-enriched", "snowplow", samples.write_snowplow, "enriched.tsv", {}, 1),
    ("snowplow-atomic", "snowplow", samples.write_snowplow_atomic, "atomic_events.csv", {}, 1),
    ("segment", "segment", samples.write_segment, "segment.json", {}, 1),
    ("rudderstack", "rudderstack", _rudderstack, "rudderstack.json", {}, 1),
    # Adobe's site search lives in an implementation-specific eVar: mapped here, as a team would
    ("adobe", "adobe", samples.write_adobe, "hit_data.tsv", {"search_query": "post_evar1"}, 3),
    ("posthog-ndjson", "posthog", samples.write_posthog, "posthog.json", {"search_query": "properties.query"}, 1),
    ("posthog-csv", "posthog", samples.write_posthog_csv, "posthog.csv", {"search_query": "properties.query"}, 1),
]


def write(variant: tuple[Any, ...], directory: Path) -> Path:
    _, _, writer, name, _, _ = variant
    directory.mkdir(parents=True, exist_ok=True)
    return writer(HITS, directory / name)


def sessions_of(path: Path) -> set[tuple[str, int, str | None, int]]:
    rows = ds.dataset(path).to_table().to_pylist()
    return {(s["visitor_id"], s["n_events"], s["customer_id"], int(s["start"].timestamp() * 1e6)) for s in rows}


@pytest.mark.parametrize("variant", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_sample_round_trips(variant: tuple[Any, ...], tmp_path: Path) -> None:
    _, preset, _, _, mapping, quarantined = variant
    src = write(variant, tmp_path / "in")
    report = ingest(src, tmp_path / "out", IngestOptions(preset=preset, mapping=mapping))
    assert report.reconciles and report.preset == preset
    # the sample's every event, one exact duplicate, and the bad rows (a malformed row; Adobe's excluded hits)
    assert (report.rows_out, report.duplicates, report.quarantined) == (len(HITS), 1, quarantined)
    assert report.rows_in == len(HITS) + 1 + quarantined
    sessionize(tmp_path / "out" / "events.parquet", tmp_path / "out" / "sessions.parquet")
    got = sessions_of(tmp_path / "out" / "sessions.parquet")
    assert got == samples.expected_sessions(HITS, preset)
    linked = {s for s in got if s[2] is not None}
    assert len(linked) == len({(h.visitor, h.session) for h in HITS if h.kind == "login"}) > 0
    events = pq.read_table(tmp_path / "out" / "events.parquet")
    searched = sorted(q for q in events.column("search_query").to_pylist() if q)
    assert searched == sorted(h.query for h in HITS if h.kind == "search" and h.query)
    assert set(events.column("platform").to_pylist()) == {"web"}


def test_malformed_rows_get_the_generic_readers_words(tmp_path: Path) -> None:
    src = samples.write_ga4(HITS, tmp_path / "ga4.json")
    preset = ingest(src, tmp_path / "preset", IngestOptions(preset="ga4"))
    generic = ingest(
        src,
        tmp_path / "generic",
        IngestOptions(
            mapping={"ts": "event_timestamp", "visitor_id": "user_pseudo_id", "url": "event_name", "device": "platform"}
        ),
    )  # fmt: skip  (GA4's own `device` is a record: over the length limit as JSON
    malformed = {k: v for k, v in generic.quarantine_reasons.items() if k.startswith("malformed")}
    assert preset.quarantine_reasons == malformed == {"malformed JSON: Unterminated string starting at": 1}
    lines = pq.read_table(tmp_path / "preset" / "quarantine.parquet").column("source_line").to_pylist()
    text = src.read_text().splitlines()
    assert len(lines) == 1
    with pytest.raises(json.JSONDecodeError):
        json.loads(text[lines[0] - 1])  # the line number points at the malformed line


def test_bad_values_are_quarantined_in_todays_words(tmp_path: Path) -> None:
    rows = [json.loads(samples.bq_json(r)) for r in samples.ga4_rows(HITS[:4])]
    rows[0]["event_timestamp"] = "yesterday"
    del rows[1]["user_pseudo_id"]
    rows[2]["event_params"] = [p for p in rows[2]["event_params"] if p["key"] != "page_location"]
    src = tmp_path / "ga4.json"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n[1, 2]\n")
    report = ingest(src, tmp_path / "out", IngestOptions(preset="ga4"))
    assert report.quarantine_reasons == {"unparseable ts": 1, "missing visitor_id": 1, "missing url": 1,
                                         "JSON line is not an object": 1}  # fmt: skip
    assert report.rows_in == 5 and report.rows_out == 1  # the blank line is no row


def test_map_overrides_a_preset_field(tmp_path: Path) -> None:
    src = samples.write_ga4(HITS, tmp_path / "ga4.json")
    mapping = {"page_title": "event_params.page_location", "device": "device.operating_system"}
    ingest(src, tmp_path / "out", IngestOptions(preset="ga4", mapping=mapping))
    events = pq.read_table(tmp_path / "out" / "events.parquet")
    assert events.column("page_title").to_pylist() == events.column("url").to_pylist()
    assert set(events.column("device").to_pylist()) == {"iOS", "Windows"}


def test_the_wrong_preset_fails_with_one_clear_line(tmp_path: Path) -> None:
    src = samples.write_segment(HITS, tmp_path / "segment.json")
    result = CliRunner().invoke(cli, ["ingest", str(src), "--preset", "ga4", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "not a GA4 BigQuery export (events_*): column(s) 'event_timestamp'" in result.output
    with pytest.raises(IngestError, match=r"--map source 'properties\.' is not COLUMN"):
        ingest(src, tmp_path / "o", IngestOptions(preset="segment", mapping={"url": "properties."}))


def test_adobe_hit_data_needs_its_column_headers(tmp_path: Path) -> None:
    src = samples.write_adobe(HITS, tmp_path / "hit_data.tsv")
    (tmp_path / "column_headers.tsv").unlink()
    with pytest.raises(IngestError, match=r"column_headers\.tsv is missing"):
        ingest(src, tmp_path / "out", IngestOptions(preset="adobe"))


def test_cli_ingest_preset_prints_the_preset(tmp_path: Path) -> None:
    src = samples.write_sample("posthog", tmp_path / "in")
    result = CliRunner().invoke(cli, ["ingest", str(src), "--preset", "posthog", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "preset posthog" in result.output and "[reconciles;" in result.output


@pytest.mark.parametrize("block", [64, 1000, 1 << 20])
def test_ndjson_blocks_keep_lines_whole_and_numbered(block: int, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(preset_readers, "BLOCK_BYTES", block)
    lines = [json.dumps({"a": str(i), "b": {"c": i}}) for i in range(50)]
    lines[7] = '{"a": "7", "b": '  # cut short
    lines[20] = ""
    raw = ("\n".join(lines) + "\n").encode()
    raw = raw.replace(b'"a": "30"', b'"a": "\xff30"')  # not UTF-8
    src = tmp_path / "x.jsonl"
    src.write_bytes(raw)
    batches = list(preset_readers._ndjson(src, {"a": "VARCHAR", "b": "VARCHAR"}, batch_rows=8))
    rows = pa.Table.from_batches([b.rows for b in batches if b.rows.num_rows])
    assert rows.column("a").to_pylist() == [str(i) for i in range(50) if i not in (7, 20, 30)]
    assert rows.column("b").to_pylist()[:2] == ['{"c":0}', '{"c":1}']
    rejects = sorted(r[:2] for b in batches for r in b.rejects)
    assert rejects == [(8, "malformed JSON: Expecting value"), (31, "invalid UTF-8")]
    firsts = [b.first_row for b in batches if b.rows.num_rows]
    sizes = [b.rows.num_rows for b in batches if b.rows.num_rows]
    assert firsts == [1 + sum(sizes[:i]) for i in range(len(sizes))]


def test_a_bad_line_after_clean_blocks_keeps_its_line_number(tmp_path: Path, monkeypatch: Any) -> None:
    # clean blocks go through Arrow's reader, which has no line numbers: the count must go on regardless
    monkeypatch.setattr(preset_readers, "BLOCK_BYTES", 40_000)
    lines = [samples.bq_json(r) for r in samples.ga4_rows(HITS)]
    lines[100] = lines[100][:50]
    src = tmp_path / "ga4.json"
    src.write_text("\n".join(lines[:60]) + "\n\n" + "\n".join(lines[60:]) + "\n")  # a blank line 61
    report = ingest(src, tmp_path / "out", IngestOptions(preset="ga4"))
    assert report.rows_in == len(lines) and report.quarantined == 1
    assert pq.read_table(tmp_path / "out" / "quarantine.parquet").column("source_line").to_pylist() == [102]


@pytest.mark.integration
@pytest.mark.parametrize("variant", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_spark_makes_the_same_rows(variant: tuple[Any, ...], spark: Any, tmp_path: Path) -> None:
    from clickintent.engines.spark import ingest_spark

    _, preset, _, _, mapping, _ = variant
    src = write(variant, tmp_path / "in")
    options = IngestOptions(preset=preset, mapping=mapping)
    duck = ingest(src, tmp_path / "duck", options)
    sprk = ingest_spark(spark, src, tmp_path / "spark", options)
    assert (duck.rows_in, duck.rows_out, duck.duplicates, duck.quarantined) == (
        sprk.rows_in, sprk.rows_out, sprk.duplicates, sprk.quarantined)  # fmt: skip
    assert duck.redactions == sprk.redactions
    key = [(c, "ascending") for c in schema.EVENTS.names]
    a = ds.dataset(tmp_path / "duck" / "events.parquet").to_table().cast(schema.EVENTS).sort_by(key)
    b = ds.dataset(tmp_path / "spark" / "events.parquet").to_table().select(schema.EVENTS.names)
    assert a.equals(b.cast(schema.EVENTS).sort_by(key))


def test_arrow_and_duckdb_json_paths_make_the_same_rows(tmp_path: Path, monkeypatch: Any) -> None:
    src = samples.write_ga4(HITS, tmp_path / "bad.json")  # its malformed line sends the block to DuckDB
    ingest(src, tmp_path / "duckdb", IngestOptions(preset="ga4"))
    clean = tmp_path / "clean.json"
    clean.write_text("".join(line for line in src.read_text().splitlines(True) if line.endswith("}\n")))

    def no_duckdb(*args: Any) -> None:
        raise AssertionError("a clean GA4 block is read by Arrow's JSON reader")

    monkeypatch.setattr(preset_readers, "_parse_block", no_duckdb)
    report = ingest(clean, tmp_path / "arrow", IngestOptions(preset="ga4"))
    assert report.quarantined == 0
    a, b = (pq.read_table(tmp_path / d / "events.parquet") for d in ("duckdb", "arrow"))
    assert a.equals(b)
