"""CLI: `clickintent ingest` and `clickintent sessionize`, the first two arrows of the flow."""

from __future__ import annotations

import json
from pathlib import Path

import click
from tqdm import tqdm

from clickintent.cli.errors import StepInput, one_line
from clickintent.cli.options import engine_options, out_dir_option
from clickintent.ingest import IngestError, IngestOptions, IngestReport, ingest
from clickintent.ingest.presets import PRESET_NAMES
from clickintent.ingest.transform import TS_UNITS
from clickintent.inputs import EVENTS
from clickintent.sessionize import SessionizeOptions, SessionizeReport, sessionize


def parse_mapping(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        contract, sep, source = pair.partition("=")
        if not sep or not contract.strip() or not source.strip():
            raise click.BadParameter(f"expected CONTRACT=SOURCE, got {pair!r}", param_hint="--map")
        mapping[contract.strip()] = source.strip()
    return mapping


def print_ingest_summary(report: IngestReport) -> None:
    preset = f", preset {report.preset}" if report.preset else ""
    click.echo(f"ingest  {report.input} ({report.format}{preset}, timestamps: {report.ts_unit})")
    click.echo(
        f"  rows in {report.rows_in:,} = out {report.rows_out:,} + quarantined {report.quarantined:,} "
        f"+ duplicates {report.duplicates:,}  [{'reconciles' if report.reconciles else 'DOES NOT RECONCILE'}; "
        f"the file has {report.counted:,} {report.counted_as}, all read]"
    )
    for reason, n in report.quarantine_reasons.items():
        click.echo(f"  quarantined {n:>8,}  {reason}")
    if report.problem:
        click.secho(f"  warning: {report.problem}", fg="yellow")
    if report.redactions:
        click.echo("  redacted    " + ", ".join(f"{k} {v:,}" for k, v in report.redactions.items()))
    click.echo(f"  wrote {report.outputs['events']}, {report.outputs['quarantine']}, {report.outputs['report']}")
    click.echo(f"  {report.seconds:.1f} s")


def print_sessionize_summary(report: SessionizeReport) -> None:
    click.echo(
        f"sessionize ({report.engine})  {report.events:,} events -> {report.sessions:,} sessions, "
        f"{report.linked_sessions:,} linked to a customer by a login; {report.seconds:.1f} s -> {report.output}"
    )


@click.command("ingest")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@out_dir_option("Directory for events.parquet, quarantine.parquet and ingest_report.json.")
@click.option(
    "--preset",
    type=click.Choice(PRESET_NAMES),
    default=None,
    help="The analytics tool that exported INPUT: its columns are mapped onto the contract (docs/IMPORT.md). "
    "Default: none, the file is in the contract or mapped with --map.",
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="CONTRACT=SOURCE",
    help="Map a source column to a contract column, e.g. --map ts=Time. Repeat for each column. With --preset "
    "it overrides that field; SOURCE may be COLUMN.key inside a JSON column (properties.query) or a GA4 "
    "event_params key (event_params.search_term).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "tsv", "parquet", "jsonl"]),
    default=None,
    help="Input format. Default: from the file extension (.txt and unknown: CSV, delimiter sniffed).",
)
@click.option("--delimiter", default=None, help="CSV delimiter. Default: sniffed from the header line.")
@click.option(
    "--ts-unit",
    type=click.Choice(TS_UNITS),
    default="auto",
    show_default=True,
    help="Unit of numeric timestamps (epoch s/ms/us); 'auto' detects it; text is read as ISO-8601.",
)
@click.option(
    "--platform",
    type=click.Choice(["web", "app"]),
    default="web",
    show_default=True,
    help="Platform for sources without a platform column.",
)
@engine_options("in this process, with DuckDB", "the same rows, written as Parquet directories")
@click.option(
    "--memory-limit",
    default="2GB",
    show_default=True,
    help="DuckDB memory limit for de-duplication and sorting; beyond it DuckDB spills to disk.",
)
@click.option(
    "--batch-rows",
    default=250_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows read and transformed at a time (bounds memory).",
)
def ingest_cmd(
    input_path: Path, out_dir: Path, preset: str | None, mapping: tuple[str, ...], fmt: str | None,
    delimiter: str | None, ts_unit: str, platform: str, engine: str, spark_master: str, memory_limit: str,
    batch_rows: int,
) -> None:  # fmt: skip
    """Validate, map, redact and de-duplicate raw events (CSV, TSV, Parquet, JSONL).

    Every input row ends up in events.parquet, in quarantine.parquet with a reason, or in the
    duplicate count; the command checks that the counts reconcile before it exits.

    \b
    Example, the YOOCHOOSE clicks sample:
      clickintent ingest yoochoose-clicks-100k_train_full.txt --out out/yc \\
        --map ts=Time --map visitor_id=SessionId --map url=ItemId
    Example, a GA4 BigQuery export (bq extract --destination_format NEWLINE_DELIMITED_JSON):
      clickintent ingest events_20240301.json --preset ga4 --out out/ga4
    """
    options = IngestOptions(
        mapping=parse_mapping(mapping), format=fmt, delimiter=delimiter, ts_unit=ts_unit, platform=platform,
        batch_rows=batch_rows, memory_limit=memory_limit, preset=preset,
    )  # fmt: skip
    try:
        if engine == "spark":
            from clickintent.engines.spark import get_spark, ingest_spark

            report = ingest_spark(get_spark(spark_master), input_path, out_dir, options)
        else:
            with tqdm(unit=" rows", unit_scale=True, desc="ingest", disable=None) as bar:
                report = ingest(input_path, out_dir, options, progress=bar.update)
    except IngestError as exc:
        raise click.ClickException(one_line(str(exc))) from exc
    print_ingest_summary(report)


@click.command("sessionize")
@click.argument("events_path", metavar="EVENTS", type=StepInput(EVENTS, "sessionize"))
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output sessions.parquet. Default: sessions.parquet beside EVENTS (in the folder, when given one).",
)
@click.option(
    "--gap-minutes",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Inactivity that ends a session.",
)
@click.option(
    "--max-hours",
    default=12.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="A visit is cut every this many hours from its first event.",
)
@click.option(
    "--max-events",
    default=512,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most events in one session; the rest continues in a new session.",
)
@engine_options("in this process, with DuckDB", "the same rows, written as Parquet directories")
@click.option(
    "--memory-limit",
    default="2GB",
    show_default=True,
    help="DuckDB memory limit when events must be sorted; beyond it DuckDB spills to disk.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a summary line.")
def sessionize_cmd(
    events_path: Path, out_path: Path | None, gap_minutes: float, max_hours: float, max_events: int,
    engine: str, spark_master: str, memory_limit: str, as_json: bool,
) -> None:  # fmt: skip
    """Group events into sessions (inactivity gap, maximum duration, maximum events).

    EVENTS is the events.parquet `clickintent ingest` wrote, or the folder it wrote it in. A login event
    with a customer_id links its whole session to that customer. Output: sessions.parquet with one row per
    session and its events nested in order.
    """
    out = out_path or events_path.parent / "sessions.parquet"
    options = SessionizeOptions(
        gap_minutes=gap_minutes, max_duration_hours=max_hours, max_events=max_events, memory_limit=memory_limit
    )
    if engine == "spark":
        from clickintent.engines.spark import get_spark, sessionize_spark

        report = sessionize_spark(get_spark(spark_master), events_path, out, options)
    else:
        report = sessionize(events_path, out, options)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        print_sessionize_summary(report)
