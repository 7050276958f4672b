"""CLI: `clickintent demo`: every step on a simulated world, then the report.

The demo is a script of the very commands a user would type, each printed before it runs, so its
output doubles as a tutorial. Where each output lies is `clickintent.run.RunLayout.demo`. Steps whose
outputs already exist are reused (the LLM answer cache and the text-vector cache make the LLM and text
steps cheap on a second run); `--fresh` starts over.
"""

from __future__ import annotations

import shlex
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import click

from clickintent.cli.options import out_dir_option
from clickintent.distill.report import DistillReport
from clickintent.report import write_run_report
from clickintent.run import RunLayout


def _run(args: list[str], outputs: list[Path], reuse: bool) -> float:
    """Run one clickintent command in this process; skip it when reusing and its outputs exist. The command
    group is the one `demo` was called from (no import of clickintent.cli, which imports this module)."""
    main = click.get_current_context().find_root().command
    line = "clickintent " + shlex.join(args)
    if reuse and outputs and all(p.exists() for p in outputs):
        click.secho(f"\n$ {line}   # outputs exist, reused", fg="cyan")
        return 0.0
    click.secho(f"\n$ {line}", fg="cyan", bold=True)
    started = time.perf_counter()
    try:
        main.main(args=args, prog_name="clickintent", standalone_mode=False)
    except click.ClickException as exc:
        raise click.ClickException(f"demo step failed: {line}\n{exc.format_message()}") from exc
    return time.perf_counter() - started


def demo_steps(out_dir: Path, *, visitors: int, days: int, seed: int, signal: float, train_minutes: float,
               label_sample: int, compare_sample: int, llm_threads: int, max_labels: int,
               bootstrap: int, llm_backend: Sequence[str] = ()) -> list[tuple[str, list[str], list[Path]]]:
    """The demo as (step name, clickintent arguments, outputs that let a re-run skip it). Every learner
    (train, taxonomy build, the LLM labels the distiller learns from) reads split/learn-visits.parquet;
    only the comparisons' LLM labels come from split/eval-visits.parquet (tests/test_protocol.py checks it)."""
    run = RunLayout.demo(out_dir)
    sim, data, bundle, split, sessions, visits = run.sim, run.data, run.bundle, run.split, run.sessions, run.visits
    learn, evaluation_visits, embeddings = run.learn_visits, run.eval_visits, run.embeddings
    taxonomy, labels, compare, distilled = run.taxonomy, run.llm_labels, run.compare_labels, run.distilled
    distill_json, evaluation, cache = run.distill_report, run.evaluation, run.llm_cache
    llm = ["--llm-cache", str(cache), "--llm-threads", str(llm_threads), *llm_backend]
    steps: list[tuple[str, list[str], list[Path]]] = [
        ("simulate", ["simulate", "--visitors", str(visitors), "--days", str(days), "--seed", str(seed),
                      "--signal", str(signal), "--out", str(sim)], [sim / "events.parquet"]),
        ("ingest", ["ingest", str(sim / "events.parquet"), "--out", str(data)], [run.events]),
        ("sessionize", ["sessionize", str(run.events), "--out", str(sessions)], [sessions]),
        ("cut", ["cut", str(sessions), "--out", str(visits)], [visits]),
        ("split", ["split", str(visits), "--sim", str(sim), "--out", str(split), "--seed", str(seed)], [learn]),
        ("train", ["train", str(learn), "--out", str(bundle), "--max-minutes", str(train_minutes),
                   "--seed", str(seed)], [bundle / "encoder.safetensors"]),
        ("embed", ["embed", str(visits), "--bundle", str(bundle), "--out", str(embeddings)], [embeddings]),
        # Clustered on the MiniLM vectors of the visits' words: on the encoder's embeddings the silhouette
        # picked 2-3 clusters for web sessions (docs/BENCHMARKS.md, issue 6, session 3). Spectral clusters
        # (the build's default) with up to 20 labels for the world's 18 intents (issue 19, session 6).
        ("taxonomy build", ["taxonomy", "build", str(learn), "--out", str(taxonomy), "--vectors", "text",
                            "--platform", "web", "--seed", str(seed), "--max-labels", str(max_labels), *llm],
         [taxonomy]),
        ("taxonomy label", ["taxonomy", "label", str(learn), "--taxonomy", str(taxonomy), "--out", str(labels),
                            "--sample", str(label_sample), "--seed", str(seed), "--platform", "web", *llm], [labels]),
        ("distill", ["distill", "--embeddings", str(embeddings), "--labels", str(labels), "--taxonomy",
                     str(taxonomy), "--sessions", str(visits), "--bundle", str(bundle), "--sim", str(sim),
                     "--report", str(distill_json), "--seed", str(seed)], [distill_json]),
        ("label", ["label", str(visits), "--bundle", str(bundle), "--embeddings", str(embeddings),
                   "--out", str(distilled)], [distilled]),
    ]
    compare_args: list[str] = []
    if compare_sample:
        steps.append(("taxonomy label", ["taxonomy", "label", str(evaluation_visits), "--taxonomy", str(taxonomy),
                                         "--out", str(compare), "--sample", str(compare_sample), "--seed",
                                         str(seed), "--platform", "web", "--examples-from", str(learn), *llm],
                      [compare]))
        compare_args = ["--llm-labels", str(compare)]
    steps.append(("evaluate", ["evaluate", str(visits), "--split", str(split), "--sim", str(sim), "--embeddings",
                               str(embeddings), *compare_args, "--distilled-labels", str(distilled), "--taxonomy",
                               str(taxonomy), "--bootstrap", str(bootstrap), "--out", str(evaluation)],
                  [evaluation]))
    return steps


@click.command("demo")
@out_dir_option("Directory for every output; the report is OUT/report.html.")
@click.option(
    "--visitors", default=20000, show_default=True, type=click.IntRange(min=50), help="People in the simulated world."
)
@click.option("--days", default=30, show_default=True, type=click.IntRange(min=1), help="Days simulated.")
@click.option("--seed", default=0, show_default=True, help="Seed for the world and every model.")
@click.option(
    "--signal",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="How much web intent drives app behaviour (0 = placebo world; docs/SIMULATOR.md).",
)
@click.option(
    "--train-minutes",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Time budget for training the encoder.",
)
@click.option(
    "--label-sample",
    default=200,
    show_default=True,
    type=click.IntRange(min=50),
    help="Learning visits the local LLM labels for the distiller (about 0.5-1 s each).",
)
@click.option(
    "--compare-sample",
    default=200,
    show_default=True,
    type=click.IntRange(min=0),
    help="Evaluation visits the LLM labels for the comparisons with LLM labels (0: skip them).",
)
@click.option(
    "--llm-threads",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="llama.cpp threads for the LLM steps (docs/BENCHMARKS.md measures 1 vs 2).",
)
@click.option(
    "--max-labels",
    default=20,
    show_default=True,
    type=click.IntRange(min=2),
    help="Most taxonomy labels (each costs a few LLM calls to name).",
)
@click.option(
    "--bootstrap",
    default=1000,
    show_default=True,
    type=click.IntRange(min=20),
    help="Person-bootstrap replicates of the evaluation's CIs.",
)
@click.option("--llm", "llm_kind", type=click.Choice(["local", "openai"]), default="local", show_default=True,
              help="LLM for the taxonomy and labels: the embedded Gemma 3 270M, or any OpenAI-compatible server.")
@click.option("--llm-base-url", default=None, help="openai: server URL up to /v1, e.g. http://127.0.0.1:8000/v1.")
@click.option("--llm-model", default=None, help="openai: model name the server knows.")
@click.option("--llm-endpoint", type=click.Choice(["completions", "chat"]), default="completions", show_default=True,
              help="openai: /v1/completions (base models) or /v1/chat/completions (instruction models).")
@click.option("--llm-api-key-env", default="OPENAI_API_KEY", show_default=True,
              help="openai: environment variable holding the API key (its value is never printed).")
@click.option("--fresh", is_flag=True, help="Delete OUT first instead of reusing what is there.")
def demo_cmd(out_dir: Path, visitors: int, days: int, seed: int, signal: float, train_minutes: float,
             label_sample: int, compare_sample: int, llm_threads: int, max_labels: int, bootstrap: int,
             llm_kind: str, llm_base_url: str | None, llm_model: str | None, llm_endpoint: str,
             llm_api_key_env: str, fresh: bool) -> None:
    """Run the whole pipeline on a simulated bank and write OUT/report.html.

    simulate -> ingest -> sessionize -> cut (before applications) -> split (who is learned from, who is
    scored) -> train and taxonomy on the learning visits -> embed -> LLM labels (a sample of the learning
    visits for the distiller, one of the evaluation visits for the comparisons) -> distill -> label ->
    evaluate -> report. Every step is printed as the command you would type yourself.
    """
    backend: list[str] = []
    if llm_kind == "openai":
        if not llm_base_url or not llm_model:
            raise click.UsageError("--llm openai needs --llm-base-url and --llm-model")
        backend = ["--llm", "openai", "--llm-base-url", llm_base_url, "--llm-model", llm_model,
                   "--llm-endpoint", llm_endpoint, "--llm-api-key-env", llm_api_key_env]
    if fresh:
        shutil.rmtree(out_dir, ignore_errors=True)
    reuse = not fresh
    steps = demo_steps(out_dir, visitors=visitors, days=days, seed=seed, signal=signal, train_minutes=train_minutes,
                       label_sample=label_sample, compare_sample=compare_sample, llm_threads=llm_threads,
                       max_labels=max_labels, bootstrap=bootstrap, llm_backend=backend)
    run = RunLayout.demo(out_dir)
    timings = []
    started = time.perf_counter()
    for name, args, outputs in steps:
        timings.append((name, _run(args, outputs, reuse)))
    t0 = time.perf_counter()
    report = write_run_report(run, sim_dir=run.sim)
    timings.append(("report", time.perf_counter() - t0))
    _summary(timings, time.perf_counter() - started, run, report)


def _summary(timings: list[tuple[str, float]], total: float, run: RunLayout, report: Path) -> None:
    import json

    from clickintent.cli.evaluate import headline_table

    click.secho("\nclickintent demo: done (everything ran on SIMULATED data, docs/SIMULATOR.md)", bold=True)
    for name, seconds in timings:
        click.echo(f"  {name:16s} {'reused' if seconds == 0 else f'{seconds:7.1f} s'}")
    click.echo("  (the evaluation's protocol and how to read its figures: docs/EVALUATION.md)")
    click.echo(f"  {'total':16s} {total:7.1f} s")
    if run.distill_report.exists():
        d = DistillReport.load(run.distill_report)
        line = f"\ndistilled labeller: agreement with the LLM {d.agreement.accuracy:.1%} (held out)"
        if d.truth and d.truth.drop is not None:
            line += f"; accuracy vs truth LLM {d.truth.llm_accuracy:.1%}, distilled {d.truth.distilled_accuracy:.1%}"
        if d.speedup:
            line += f"; {d.speedup:,.0f}x faster than the LLM"
        click.echo(line)
    if run.evaluation.exists():
        for line in headline_table(json.loads(run.evaluation.read_text())):
            click.echo(line)
    click.secho(f"\nreport: {report}  (open it in a browser)", bold=True)
