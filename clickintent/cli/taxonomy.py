"""CLI: `clickintent taxonomy build` (sessions -> taxonomy.json) and `clickintent taxonomy label`
(sessions + taxonomy.json -> labels.parquet), with the LLM options both share.

Each command prints a one-screen summary (the taxonomy tree or the label counts, and the LLM usage per
step); every LLM step shows a progress bar. Answers are cached in an SQLite file beside the output
(`--llm-cache`), so a run that failed or was interrupted resumes for free.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import click
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clickintent.cli.errors import StepInput, TaxonomyFile
from clickintent.inputs import EMBEDDINGS, SESSIONS
from clickintent.llm import BACKENDS, LLM, LLMError, MissingExtra, make_backend

LABEL_STEP = "labels"  # clickintent.taxonomy.label.STEP, without importing it at start-up

CACHE_NAME = "llm-cache.sqlite"
SHORTLIST = 3  # clickintent.taxonomy.label: the labels the model chooses among by default (docs/TAXONOMY.md)
SIMILARITY_WEIGHT = 100.0  # clickintent.taxonomy.label.SIMILARITY_WEIGHT, without importing it (a test checks)
CRAWL_PAGES, CRAWL_SECONDS = 10, 4.0  # clickintent.taxonomy.crawls's, without importing it (a test checks)
PACE = f"{CRAWL_PAGES}+ pages at under {CRAWL_SECONDS:g} s a page"


def llm_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options that choose and configure an LLM backend."""
    options = [
        click.option(
            "--llm",
            "llm_kind",
            type=click.Choice(BACKENDS),
            default="local",
            show_default=True,
            help="Backend: local = Gemma 3 270M in-process (extra llm-local); openai = any OpenAI-compatible server.",
        ),
        click.option("--llm-base-url", help="openai backend: server URL up to /v1, e.g. http://127.0.0.1:8000/v1."),
        click.option("--llm-model", help="openai backend: model name the server knows."),
        click.option(
            "--llm-endpoint",
            type=click.Choice(["completions", "chat"]),
            default="completions",
            show_default=True,
            help="openai backend: /v1/completions (base models) or /v1/chat/completions.",
        ),
        click.option(
            "--llm-api-key-env",
            default="OPENAI_API_KEY",
            show_default=True,
            help="openai backend: environment variable that holds the API key (unset: no key sent).",
        ),
        click.option(
            "--llm-constraint",
            type=click.Choice(["grammar", "guided", "json_schema", "none"]),
            default=None,
            help="openai backend: how the server restricts output [default: grammar for completions, "
            "json_schema for chat].",
        ),
        click.option("--llm-threads", type=int, default=1, show_default=True, help="local backend: CPU threads."),
        click.option(
            "--llm-cache",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help=f"SQLite answer cache [default: {CACHE_NAME} beside the output file].",
        ),
        click.option("--llm-max-calls", type=int, default=None, help="Call budget; stop with an error past it."),
        click.option("--llm-timeout", type=float, default=120.0, show_default=True, help="Seconds per HTTP call."),
        click.option("--llm-retries", type=int, default=4, show_default=True, help="Retries per failed call."),
        click.option(
            "--llm-concurrency",
            type=int,
            default=4,
            show_default=True,
            help="openai backend: calls in flight.",
        ),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


platform_option = click.option(
    "--platform",
    type=click.Choice(["all", "web", "app"]),
    default="all",
    show_default=True,
    help="Only sessions of this platform (web: what visitors came to the site for; the LLM's calls go there).",
)


def _only_platform(table: pa.Table, platform: str) -> pa.Table:
    """The rows of `platform` ('all' keeps every row); a clear error when none is left."""
    if platform == "all":
        return table
    kept = table.filter(pc.equal(table.column("platform"), platform))
    if kept.num_rows == 0:
        found = ", ".join(sorted(set(table.column("platform").to_pylist()) - {None})) or "none"
        raise click.ClickException(f"no {platform} sessions in the input (platforms found: {found})")
    return kept


def _backend(out: Path, kw: dict[str, Any]) -> LLM:
    return make_backend(
        kw.pop("llm_kind"),
        cache=kw.pop("llm_cache") or out.parent / CACHE_NAME,
        base_url=kw.pop("llm_base_url"),
        model=kw.pop("llm_model"),
        endpoint=kw.pop("llm_endpoint"),
        api_key_env=kw.pop("llm_api_key_env"),
        constraint=kw.pop("llm_constraint"),
        n_threads=kw.pop("llm_threads"),
        max_calls=kw.pop("llm_max_calls"),
        timeout=kw.pop("llm_timeout"),
        retries=kw.pop("llm_retries"),
        concurrency=kw.pop("llm_concurrency"),
    )


def _usage_lines(llm: LLM, seconds: float) -> list[str]:
    lines = [f"{'LLM step':44} {'requests':>8} {'calls':>6} {'hits':>6} {'tokens':>9} {'time':>8}"]
    for step, u in llm.usage.items():
        lines.append(f"{step[:44]:44} {u.requests:8d} {u.calls:6d} {u.cache_hits:6d} {u.tokens:9d} {u.seconds:7.1f}s")
    t = llm.total_usage()
    lines.append(f"{'total':44} {t.requests:8d} {t.calls:6d} {t.cache_hits:6d} {t.tokens:9d} {seconds:7.1f}s")
    return lines


def _friendly_errors(f: Callable[..., Any]) -> Callable[..., Any]:
    """LLM failures become one clear message (naming the step and its progress) instead of a traceback."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except (LLMError, MissingExtra) as e:
            raise click.ClickException(str(e)) from e

    return wrapper


@click.group("taxonomy")
def taxonomy_group() -> None:
    """Generate an intent taxonomy from sessions, and LLM-label a sample with it."""


@taxonomy_group.command("build")
@click.argument("sessions", type=StepInput(SESSIONS, "build a taxonomy from"))
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("taxonomy.json"),
    show_default=True,
    help="Where to write taxonomy.json.",
)
@click.option(
    "--mode",
    type=click.Choice(["cluster", "llm"]),
    default="cluster",
    show_default=True,
    help="cluster: clusters of sessions, categories from the site's sections, names chosen among each "
    "cluster's own phrases (works with the local model); llm: TnT-LLM generate/update/review (needs a capable "
    "chat server).",
)
@click.option("--max-labels", type=int, default=12, show_default=True, help="Most labels, not counting Other.")
@click.option("--sample", type=int, default=2000, show_default=True, help="Sessions to build from.")
@click.option(
    "--embeddings",
    type=StepInput(EMBEDDINGS, "cluster"),
    default=None,
    help="cluster mode: embeddings.parquet whose vectors --vectors embeddings (or auto) clusters.",
)
@click.option(
    "--vectors",
    type=click.Choice(["auto", "embeddings", "text", "terms", "text+terms"]),
    default="auto",
    show_default=True,
    help="cluster mode: what to cluster: the --embeddings file, MiniLM vectors of each session's words (text), "
    "TF-IDF vectors of its title, URL and search phrases (terms), or both (text+terms) (auto: embeddings when "
    "--embeddings is given, else text).",
)
@click.option(
    "--clusterer",
    type=click.Choice(["spectral", "kmeans"]),
    default="spectral",
    show_default=True,
    help="cluster mode: spectral clustering of the nearest-neighbour graph, k the best silhouette between half "
    "of --max-labels and --max-labels; or k-means (the earlier method), k the best silhouette from 2 up.",
)
@click.option(
    "--clusters",
    type=click.IntRange(min=2),
    default=None,
    help="cluster mode: exactly this many clusters, before near-duplicate names merge and clusters under 1% of "
    "the sessions go to Other [default: the best silhouette between half of --max-labels and --max-labels].",
)
@click.option(
    "--llm-descriptions/--template-descriptions",
    default=False,
    show_default=True,
    help="cluster mode: the LLM writes each label's description (validated; the template when it fails), or "
    "a template from the label's own phrases, section and searches (no LLM calls, grounded by construction).",
)
@click.option(
    "--keep-crawls",
    is_flag=True,
    help=f"cluster mode: build from machine-paced visits too ({PACE}: crawlers and monitors, left out by default "
    "so that no label is about them).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling and clustering seed.")
@platform_option
@llm_options
@_friendly_errors
def build_cmd(
    sessions: Path,
    out: Path,
    mode: str,
    max_labels: int,
    sample: int,
    embeddings: Path | None,
    vectors: str,
    clusterer: str,
    clusters: int | None,
    llm_descriptions: bool,
    keep_crawls: bool,
    seed: int,
    platform: str,
    **llm_kw: Any,
) -> None:
    """Build taxonomy.json from SESSIONS (a sessions.parquet)."""
    from clickintent.taxonomy.cluster import KMeansClusterer, SpectralClusterer, k_range
    from clickintent.taxonomy.generate import Vectors, generate_cluster
    from clickintent.taxonomy.tnt import generate_llm

    if mode == "llm" and llm_kw["llm_kind"] == "local":
        # Checked before any call: the mode summarises every sampled session first, which takes the embedded
        # model about a second each, and only then asks for the taxonomy it cannot write.
        raise click.UsageError(
            "--mode llm needs an instruction-following model that writes a taxonomy as JSON; the embedded "
            "Gemma 3 270M is a base model and its taxonomies fail validation (empty names; docs/BENCHMARKS.md). "
            "Use --mode cluster (made for it), or --mode llm with --llm openai --llm-base-url URL --llm-model NAME."
        )
    if vectors == "embeddings" and embeddings is None:
        raise click.UsageError("--vectors embeddings needs --embeddings FILE (an embeddings.parquet)")
    if embeddings is not None and vectors in ("text", "terms", "text+terms"):
        click.echo(f"note: --vectors {vectors} clusters the sessions' own words; --embeddings is not used")
    start = time.perf_counter()
    llm = _backend(out, llm_kw)
    table = _only_platform(pq.read_table(sessions), platform)
    if table.num_rows == 0:
        raise click.ClickException(f"{sessions} holds no sessions to build a taxonomy from")
    if mode == "llm":
        tax = generate_llm(table, llm, max_labels=max_labels, sample=sample, seed=seed).taxonomy
    else:
        chosen = (
            SpectralClusterer(k=clusters or k_range(max_labels), seed=seed)
            if clusterer == "spectral"
            else KMeansClusterer(k=clusters or range(2, max(2, max_labels) + 1), seed=seed)
        )
        emb = pq.read_table(embeddings) if embeddings is not None and vectors in ("auto", "embeddings") else None
        own = cast(Vectors, vectors if vectors in ("terms", "text+terms") else "text")
        tax = generate_cluster(table, llm, clusterer=chosen, embeddings=emb, vectors=own, sample=sample, seed=seed,
                               llm_descriptions=llm_descriptions, keep_crawls=keep_crawls).taxonomy  # fmt: skip
    tax.save(out)
    click.echo(tax.tree())
    if crawls := tax.generator.get("crawls_left_out", 0):
        click.echo(f"\nnote: {crawls} machine-paced visits of the sample ({PACE}: crawlers, monitors) were left "
                   "out of the build; --keep-crawls keeps them.")  # fmt: skip
    found = len(tax.labels) - 1  # not counting Other
    if mode == "cluster" and found < max(3, max_labels // 3):
        hint = "--vectors text" if emb is not None else "--max-labels or a larger --sample"
        click.echo(f"\nnote: only {found} labels of up to {max_labels}: the silhouette found few well-separated "
                   f"clusters in these vectors; try {hint}.")  # fmt: skip
    click.echo("")
    click.echo("\n".join(_usage_lines(llm, time.perf_counter() - start)))
    click.echo(f"\nwrote {out}")


@taxonomy_group.command("show")
@click.argument("taxonomy_path", metavar="TAXONOMY", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--visits/--no-visits", default=True, show_default=True, help="One example visit under each label.")
def show_cmd(taxonomy_path: Path, visits: bool) -> None:
    """Print TAXONOMY (a taxonomy.json) as a tree: categories and labels with their shares of the sessions it
    was built from, each label's description and, where the taxonomy wrote them out, one example visit."""
    from clickintent.taxonomy.taxonomy import Taxonomy

    try:
        tax = Taxonomy.load(taxonomy_path)
    except ValueError as e:
        raise click.ClickException(f"{taxonomy_path}: {e}") from e
    click.echo(tax.tree(visits=visits))
    gen = tax.generator
    made = ", ".join(f"{k} {gen[k]}" for k in ("sessions", "clusterer", "model") if gen.get(k) is not None)
    if made:
        click.echo(f"\nbuilt from: {made}")


@taxonomy_group.command("label")
@click.argument("sessions", type=StepInput(SESSIONS, "label"))
@click.option(
    "-t",
    "--taxonomy",
    "taxonomy_path",
    type=TaxonomyFile(),
    default=Path("taxonomy.json"),
    show_default=True,
    help="taxonomy.json from `clickintent taxonomy build`.",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("labels.parquet"),
    show_default=True,
    help="Where to write labels.parquet.",
)
@click.option("--sample", type=int, default=2000, show_default=True, help="Sessions to label (0 = all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")
@click.option(
    "--examples",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Example visits per label shown in every prompt (those the taxonomy wrote out; 0 = none).",
)
@click.option(
    "--neighbours",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Also show, before each visit, this many taxonomy example visits most like it (MiniLM; the example "
    "sessions must be in SESSIONS): every prompt then differs, so a label costs more (docs/TAXONOMY.md).",
)
@click.option(
    "--shortlist",
    type=click.IntRange(min=0),
    default=SHORTLIST,
    show_default=True,
    help="The model chooses among this many labels whose example visits are most like the visit, and Other "
    "(0 = among every label; labels whose examples are not in SESSIONS are always candidates).",
)
@click.option(
    "--examples-from",
    "examples_from",
    type=StepInput(SESSIONS),
    default=None,
    help="The visits the taxonomy was built from, where its example visits are (default: SESSIONS). Give it "
    "when SESSIONS are other visits (e.g. the evaluation visits of `clickintent split`).",
)
@click.option(
    "--calibrate/--no-calibrate",
    default=True,
    show_default=True,
    help="Subtract each label's score on a content-free visit (scoring backends only).",
)
@click.option(
    "--similarity-weight",
    type=click.FloatRange(min=0),
    default=SIMILARITY_WEIGHT,
    show_default=True,
    help="Add this times the visit's mean cosine to each shortlisted label's example visits to the model's "
    "score (scoring backends, --shortlist > 0; 0 = the model alone; docs/TAXONOMY.md).",
)
@platform_option
@llm_options
@_friendly_errors
def label_cmd(
    sessions: Path,
    taxonomy_path: Path,
    out: Path,
    sample: int,
    seed: int,
    examples: int,
    neighbours: int,
    shortlist: int,
    examples_from: Path | None,
    calibrate: bool,
    similarity_weight: float,
    platform: str,
    **llm_kw: Any,
) -> None:
    """LLM-label a sample of SESSIONS with one label each; writes labels.parquet (source llm)."""
    from collections import Counter

    from clickintent.taxonomy import label as lab
    from clickintent.taxonomy.taxonomy import Taxonomy

    start = time.perf_counter()
    tax = Taxonomy.load(taxonomy_path)
    llm = _backend(out, llm_kw)
    table = _only_platform(pq.read_table(sessions), platform)
    shots: list[lab.Demonstrations] = [lab.LabelVisits(examples)] if examples else []
    if neighbours:
        shots.append(lab.NeighbourVisits(table, neighbours))
    demos = shots[0] if len(shots) == 1 else lab.Both(*shots) if shots else lab.NoDemonstrations()
    pool = table if examples_from is None else _only_platform(pq.read_table(examples_from), platform)
    candidates = lab.NearestLabels(pool, shortlist) if shortlist else lab.AllLabels()
    labels = lab.label_sessions(table, tax, llm, sample=sample or None, seed=seed, demonstrations=demos,
                                candidates=candidates, calibrate=calibrate,
                                similarity_weight=similarity_weight)  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(labels, out)
    counts = Counter(labels.column("intent").to_pylist())
    conf = labels.column("confidence").to_numpy()
    click.echo(f"taxonomy {tax.version}: {labels.num_rows} sessions labelled, mean confidence {conf.mean():.2f}")
    for lb in tax.labels:
        n = counts.get(lb.id, 0)
        click.echo(f"  {lb.category} > {lb.name:32} {n:6d}  {n / max(1, labels.num_rows):6.1%}")
    click.echo("")
    click.echo("\n".join(_usage_lines(llm, time.perf_counter() - start)))
    _write_label_meta(out, labels.num_rows, llm)
    click.echo(f"\nwrote {out}")


def _write_label_meta(out: Path, sessions: int, llm: LLM) -> None:
    """labels.json beside labels.parquet: LLM cost per label, for the report and the distillation speed-up.
    A re-run served from the cache made no calls, so it keeps the timing measured when the calls were made."""
    meta_path = out.with_suffix(".json")
    u = llm.usage.get(LABEL_STEP)
    if u is None or u.calls == 0:
        if meta_path.exists():
            return
        meta: dict[str, Any] = {"sessions": sessions, "calls": 0, "seconds": 0.0, "seconds_per_label": None}
    else:
        meta = {
            "sessions": sessions,
            "backend": llm.name,
            "model": llm.model,
            "threads": getattr(llm, "n_threads", None),  # the local backend's; None for a server
            "calls": u.calls,
            "tokens": u.tokens,
            "seconds": u.seconds,
            "seconds_per_label": u.seconds / u.calls,
        }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
