"""CLI: `clickintent serve --bundle DIR`, the scoring service (FastAPI + uvicorn; extra `serve`).

The options become CLICKINTENT_* environment variables, read by `clickintent.serve.settings.Settings` in
each worker process, so one settings object configures every worker. The API key is never an option (it
would show in `ps`): set CLICKINTENT_API_KEY.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import click


def _log_config(level: str) -> dict[str, object]:
    """uvicorn's loggers plus clickintent's, one line format; uvicorn's access log (raw paths) stays off."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": fmt}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "clickintent": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }


@click.command("serve")
@click.option(
    "--bundle",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Bundle directory with an encoder and a classifier (a symlink works: flip it, then reload).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 for all).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to bind.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes. Live sessions are kept per process: use 1 unless clients are routed to workers by session.",
)
@click.option(
    "--engine",
    type=click.Choice(["auto", "onnx", "torch"]),
    default="auto",
    show_default=True,
    help="Encoder runtime; auto = ONNX Runtime when installed (extra 'onnx', measured faster), else torch.",
)
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64), help="Encoder threads per worker.")
@click.option(
    "--max-body-bytes",
    default=1 << 20,
    show_default=True,
    type=click.IntRange(1024),
    help="Largest request body (413 beyond).",
)
@click.option(
    "--max-events",
    default=512,
    show_default=True,
    type=click.IntRange(1, 512),
    help="Most events in one session (422 beyond).",
)
@click.option(
    "--max-batch",
    default=64,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Most sessions per /v1/score request (422 beyond).",
)
@click.option(
    "--top-events",
    default=3,
    show_default=True,
    type=click.IntRange(0, 64),
    help="Events returned by explain as the ones that weighed most.",
)
@click.option(
    "--read-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1, max=600),
    help="Seconds a request's headers, and then its body, may take to arrive (then closed / 408).",
)
@click.option(
    "--max-connections",
    default=1000,
    show_default=True,
    type=click.IntRange(1),
    help="Open connections per worker; more are closed as they open.",
)
@click.option(
    "--live-max-sessions",
    default=10_000,
    show_default=True,
    type=click.IntRange(1),
    help="Live sessions kept in memory (least recently used dropped first).",
)
@click.option(
    "--live-max-mb",
    default=256,
    show_default=True,
    type=click.IntRange(1),
    help="Memory for live sessions, in MiB as Python holds them (least recently used dropped first).",
)
@click.option(
    "--live-ttl",
    default=1800.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds after which an untouched live session is dropped.",
)
@click.option(
    "--gap-minutes",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Inactivity that ends a live session (the sessionizer's rule).",
)
@click.option(
    "--text-cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Text-vector cache directory (default $CLICKINTENT_CACHE_DIR/text or ~/.cache/clickintent/text).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Log level (the access log is at info).",
)
def serve_cmd(
    bundle: Path,
    host: str,
    port: int,
    workers: int,
    engine: str,
    threads: int,
    max_body_bytes: int,
    max_events: int,
    max_batch: int,
    top_events: int,
    read_timeout: float,
    max_connections: int,
    live_max_sessions: int,
    live_max_mb: int,
    live_ttl: float,
    gap_minutes: float,
    text_cache: Path | None,
    log_level: str,
) -> None:
    """Serve embeddings and intents of BUNDLE over HTTP (see docs/SERVICE.md).

    \b
    Routes: POST /v1/embed /v1/intent /v1/score /v1/sessions /v1/sessions/{id}/events /admin/reload,
            GET /healthz /readyz /metrics /docs /openapi.json
    Set CLICKINTENT_API_KEY to require a key on every route but the health checks.
    Reload a new bundle without a restart: POST /admin/reload, or `kill -HUP <pid>`.
    """
    try:
        from clickintent.serve.settings import check_api_key

        check_api_key(os.environ.get("CLICKINTENT_API_KEY"))  # before the slow imports: a mistake shows at once
        import uvicorn

        from clickintent.serve.app import app_from_env  # noqa: F401 - fail here if the extra is missing
    except ImportError as exc:
        hint = "pip install 'clickintent[serve]'"
        raise click.ClickException(f"the service needs the 'serve' extra: {hint} ({exc})") from exc
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    from clickintent.bundle import BundleError, load_bundle

    try:
        verified = load_bundle(bundle)
    except BundleError as exc:
        raise click.ClickException(
            f"{exc}; --bundle takes the folder `clickintent train --out BUNDLE` writes, with the classifier "
            "`clickintent distill` adds"
        ) from exc
    if "classifier" not in verified.components:
        raise click.ClickException(f"{bundle} has no intent classifier: run `clickintent distill` first")
    env = {
        "BUNDLE": str(bundle.absolute()), "ENGINE": engine, "THREADS": threads, "WORKERS": workers,
        "MAX_BODY_BYTES": max_body_bytes, "MAX_EVENTS": max_events, "MAX_BATCH": max_batch,
        "TOP_EVENTS": top_events, "READ_TIMEOUT_SECONDS": read_timeout, "MAX_CONNECTIONS": max_connections,
        "LIVE_MAX_SESSIONS": live_max_sessions, "LIVE_MAX_BYTES": live_max_mb << 20,
        "LIVE_TTL_SECONDS": live_ttl, "GAP_MINUTES": gap_minutes,
    }  # fmt: skip
    if text_cache is not None:
        env["TEXT_CACHE"] = str(text_cache)
    for key, value in env.items():
        os.environ[f"CLICKINTENT_{key}"] = str(value)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="clickintent-metrics-")
    key = "set" if os.environ.get("CLICKINTENT_API_KEY") else "not set (open to anyone who can connect)"
    click.echo(f"serving {bundle} (bundle {verified.version}) on http://{host}:{port}, {workers} worker(s), "
               f"engine {engine}; API key {key}", err=True)  # fmt: skip
    logging.getLogger("clickintent").setLevel(log_level.upper())
    uvicorn.run(
        "clickintent.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
        log_config=_log_config(log_level.upper()), access_log=False, timeout_graceful_shutdown=30,
        timeout_worker_healthcheck=120,  # a worker loads torch and exports ONNX before it is ready
        http="clickintent.serve.protocol:GuardedHttpToolsProtocol",  # header deadline, connection bound
        timeout_keep_alive=5,  # an idle keep-alive connection closes after 5 s (uvicorn's default, said here)
    )  # fmt: skip
