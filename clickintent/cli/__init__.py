"""The `clickintent` command line: one subcommand per arrow of the flow in docs/ARCHITECTURE.md.

Each command (group) lives in a small module here named after it (`report` in report.py, `cut` in
cut.py, `taxonomy build|label` in taxonomy.py) and calls a plain Python function, so everything the CLI
does can also be done from Python.
"""

from __future__ import annotations

import logging

import click

from clickintent import __version__
from clickintent.cli.cut import cut_cmd
from clickintent.cli.data import ingest_cmd, sessionize_cmd
from clickintent.cli.demo import demo_cmd
from clickintent.cli.distill import distill_cmd
from clickintent.cli.encoder import embed_cmd, train_cmd
from clickintent.cli.errors import MainGroup
from clickintent.cli.evaluate import evaluate_cmd, split_cmd
from clickintent.cli.label import label_cmd
from clickintent.cli.report import report_cmd
from clickintent.cli.serve import serve_cmd
from clickintent.cli.simulate import simulate_cmd
from clickintent.cli.taxonomy import taxonomy_group


@click.group(cls=MainGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="clickintent")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages to stderr, and show tracebacks of errors.")
def main(verbose: bool) -> None:
    """Turn raw web clickstreams into session embeddings and intent labels.

    \b
    Flow: ingest -> sessionize -> cut -> split -> train -> embed -> taxonomy -> distill -> label -> evaluate
    -> report
    Run `clickintent COMMAND --help` for each step, or `make demo` for all of them on simulated data.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


main.add_command(ingest_cmd)
main.add_command(sessionize_cmd)
main.add_command(taxonomy_group)
main.add_command(train_cmd)
main.add_command(embed_cmd)
main.add_command(simulate_cmd)
main.add_command(report_cmd)
main.add_command(cut_cmd)
main.add_command(distill_cmd)
main.add_command(label_cmd)
main.add_command(split_cmd)
main.add_command(evaluate_cmd)
main.add_command(demo_cmd)
main.add_command(serve_cmd)
