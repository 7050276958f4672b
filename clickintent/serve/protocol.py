"""uvicorn's HTTP protocol (httptools) with the limits uvicorn lacks: a header deadline, a header size cap,
and a bound on open connections.

uvicorn 0.54 times out only an idle keep-alive connection: a client that opens a connection and sends
part of a request line or its headers is held open forever (issue 17: 2,000 half-sent requests stayed
open 60 s and more). This protocol, which `clickintent serve` hands to uvicorn (`http=`), adds

- a deadline: a request's headers must be complete within `read_timeout` seconds of the connection
  opening or of the previous response, else the connection is closed (the body has its own deadline,
  kept by the ASGI guard in app.py, which answers 408);
- a cap of `MAX_HEADER_BYTES` on what arrives of a request before its headers are complete (400 and
  close beyond), since httptools buffers a header until it ends;
- a bound on open connections: one past `max_connections` is closed as soon as it opens, before any
  of it is read. uvicorn's own `limit_concurrency` would still read each request to answer it 503.

The limits come from `CLICKINTENT_READ_TIMEOUT_SECONDS` and `CLICKINTENT_MAX_CONNECTIONS`, which the CLI
sets from its options (`Settings` documents them), read once per process. What it leaves out: HTTP/1.0
pipelining corner cases beyond uvicorn's own, WebSocket upgrades (this service has none), and
per-client limits (a proxy's job).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from functools import cache

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from clickintent.serve.settings import DEFAULT_MAX_CONNECTIONS, DEFAULT_READ_TIMEOUT

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 << 10  # URL and headers of one request


@dataclass(frozen=True)
class Limits:
    read_timeout: float  # seconds for a request's headers (and, in app.py, for its body)
    max_connections: int  # open connections per process


@cache
def limits() -> Limits:
    """This process's limits, from the environment the CLI set (defaults when unset)."""
    return Limits(
        float(os.environ.get("CLICKINTENT_READ_TIMEOUT_SECONDS", DEFAULT_READ_TIMEOUT)),
        int(os.environ.get("CLICKINTENT_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS)),
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline, a header cap and a connection bound."""

    _deadline: asyncio.TimerHandle | None = None
    _in_headers = False  # a request has begun and its headers are not complete yet
    _header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > limits().max_connections:
            log.warning("refused a connection: %d open, the limit is %d", len(self.connections) - 1,
                        limits().max_connections)  # fmt: skip
            transport.close()
            return
        self._arm()

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(limits().read_timeout, self._headers_late)

    def _headers_late(self) -> None:
        # No request in flight: the next one's headers did not arrive in time (an idle keep-alive
        # connection usually went earlier, at uvicorn's shorter keep-alive timeout).
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # httptools reports a header only once it is complete, so count what arrives while headers are
        # awaited (a chunk that also starts the body counts whole: a small over-estimate)
        if self._in_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self.send_400_response("Request headers too large.")  # writes, then closes

    def on_message_begin(self) -> None:
        self._in_headers, self._header_bytes = True, 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)
