"""CLI: `clickintent ingest` and `clickintent sessionize` (placeholder until the modules land)."""
import click


@click.command("ingest")
def ingest_cmd() -> None:
    """Validate, map, redact and quarantine raw events."""


@click.command("sessionize")
def sessionize_cmd() -> None:
    """Group events into sessions."""
