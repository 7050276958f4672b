"""The FastAPI application: routers, the request-limit and access-log middleware, error bodies, lifespan.

`create_app(settings)` builds an app whose lifespan loads the bundle, starts the inference thread and (in a
single-process server) reloads on SIGHUP; `app_from_env()` is the factory uvicorn workers call.

Errors: every 4xx/5xx body is `{"detail": message}` (`schemas.Problem`), a 422 also lists the failing
fields without echoing their values (they may hold PII). `RequestGuard`, the outermost layer, checks in
this order before any of the body is read: the API key (401; so a client without the key learns nothing
from how its body is parsed, issue 17), the Content-Length (413 beyond the limit). While the body is read
it refuses one that passes the limit (413) or that has not arrived `read_timeout` seconds after its
headers (408; protocol.py keeps the header deadline). Each of these answers closes the connection, since
the unread rest of the body must not be taken for the next request. Logs carry method, route template,
status and time, never raw paths, query strings or bodies (uvicorn's own access log is off, see cli/serve.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client.multiprocess import mark_process_dead
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clickintent import __version__
from clickintent.serve.deps import ApiKey, bearer_token
from clickintent.serve.metrics import Metrics, multiprocess_dir
from clickintent.serve.model import ServingModel
from clickintent.serve.routes import admin, docs, embed, health, intent, metrics, score, sessions
from clickintent.serve.service import Service
from clickintent.serve.settings import Settings

log = logging.getLogger("clickintent.serve")
access_log = logging.getLogger("clickintent.serve.access")

DESCRIPTION = """Session embeddings and intent labels for web clickstreams, one click at a time.

Events are validated and PII-redacted on arrival exactly as `clickintent ingest` does. See docs/SERVICE.md."""


class _TooLarge(Exception):
    pass


OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # answered without the API key (probes need no secret)
UNAUTHORIZED = "missing or wrong API key (send X-API-Key or Authorization: Bearer)"


def _given_key(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request sends: X-API-Key, else an Authorization: Bearer token (as deps.py reads them)."""
    bearer = None
    for name, value in headers:
        if name == b"x-api-key":
            return value
        if name == b"authorization" and bearer is None:
            bearer = bearer_token(value.decode("latin-1"))
    return None if bearer is None else bearer.encode("latin-1")


class RequestGuard:
    """Pure ASGI middleware: API key, body-size limit (413), body deadline (408), per-route metrics and a
    PII-free access log (see the module doc)."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, metrics: Metrics, api_key: bytes | None, read_timeout: float
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.api_key = api_key
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500
        started = False
        limit = self.max_body_bytes

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        if self.api_key is not None and scope["path"] not in OPEN_PATHS:
            given = _given_key(scope["headers"])
            # compare_digest takes the same time wherever the strings differ; only the length may leak
            if given is None or not hmac.compare_digest(given, self.api_key):
                status = await _problem(send, 401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
                self._record(scope, status, t0)
                return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    status = await _problem(send, 400, "invalid Content-Length header")
                    self._record(scope, status, t0)
                    return
                if int(value) > limit:
                    status = await _problem(send, 413, f"request body over the limit of {limit} bytes")
                    self._record(scope, status, t0)
                    return
        received = 0
        body_done = False
        deadline = t0 + self.read_timeout

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # after the body: waits for a disconnect, with no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.perf_counter(), 0.0))
            except TimeoutError:
                raise HTTPException(
                    408, f"request body not received within {self.read_timeout:g} s of its headers", _CLOSE
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"request body over the limit of {limit} bytes", _CLOSE)
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except HTTPException as exc:  # the limit hit outside FastAPI's body parsing
            if started:
                raise
            status = await _problem(send, exc.status_code, str(exc.detail))
        except Exception as exc:  # a bug: answer 500 here, so no traceback (which may quote data) is logged
            route = getattr(scope.get("route"), "path", "unmatched")
            log.error("internal error on %s %s: %s", scope["method"], route, type(exc).__name__)
            if started:
                raise
            status = await _problem(send, 500, "internal error")
        finally:
            self._record(scope, status, t0)

    def _record(self, scope: Scope, status: int, t0: float) -> None:
        seconds = time.perf_counter() - t0
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.metrics.requests.labels(template, scope["method"], str(status)).inc()
        self.metrics.latency.labels(template).observe(seconds)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info("%s %s %d %.1fms", scope["method"], template, status, seconds * 1e3)


_CLOSE = {"Connection": "close"}  # the unread rest of a refused body must not be taken for the next request


async def _problem(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> int:
    response = JSONResponse({"detail": detail}, status_code=status, headers={**_CLOSE, **(headers or {})})
    await response({"type": "http"}, _empty_receive, send)
    return status


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors without `input` and `ctx`: the rejected values may carry PII."""
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]


def _summary(errors: list[dict[str, Any]]) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return f"invalid request: {'; '.join(parts)}{more}"


def create_app(settings: Settings | None = None, model: ServingModel | None = None) -> FastAPI:
    """The service for `settings` (default: from CLICKINTENT_* variables); `model` skips loading the bundle."""
    settings = settings or Settings()  # type: ignore[call-arg]  # `bundle` comes from the environment
    service = Service(settings, model)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(service.start)
        # Startup leaves ~10^6 long-lived objects (torch, the model); without a freeze every full garbage
        # collection walks them all, a pause that showed as >100 ms p99 latency under load.
        gc.collect()
        gc.freeze()
        loop = asyncio.get_running_loop()
        hup = settings.workers == 1 and threading.current_thread() is threading.main_thread()
        if hup:  # with several workers uvicorn's supervisor owns SIGHUP (a rolling restart)
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(service.reload_logged()))
        try:
            yield
        finally:
            if hup:
                loop.remove_signal_handler(signal.SIGHUP)
            await asyncio.to_thread(service.stop)
            if (path := multiprocess_dir()) is not None:  # drop this worker's live gauges from /metrics
                mark_process_dead(os.getpid(), path)

    app = FastAPI(
        title="clickintent", version=__version__, description=DESCRIPTION, lifespan=lifespan,
        docs_url=None, redoc_url=None, openapi_url=None,
    )  # fmt: skip
    app.state.service = service
    for r in (embed.router, intent.router, score.router, sessions.router, metrics.router, admin.router, docs.router):
        app.include_router(r, dependencies=[ApiKey])
    app.include_router(health.router)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        return JSONResponse({"detail": _summary(errors), "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    key = settings.api_key.get_secret_value().encode() if settings.api_key is not None else None
    app.add_middleware(
        RequestGuard, max_body_bytes=settings.max_body_bytes, metrics=service.metrics, api_key=key,
        read_timeout=settings.read_timeout_seconds,
    )  # fmt: skip
    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory (`clickintent.serve.app:app_from_env`): settings from CLICKINTENT_* variables."""
    return create_app()
