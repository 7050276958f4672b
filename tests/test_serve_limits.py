"""The service's limits (issue 17): one request must not stop it, memory must not grow with what clients
send, and one client must not reach another's live session.

Unit tests: live-session ids are issued, never chosen; the live byte cap counts what CPython holds; the
serving path's per-string caches are bounded by bytes; out-of-range offset timestamps are a validation
error. Integration tests start `clickintent serve` with a key, a 1 s read deadline and a bound of 20
connections, then: the key is checked before the body; half-sent requests and silent connections are
closed (408 for a body that stops); connections past the bound are closed on arrival; /healthz answers
while a 1 MiB request of the worst text for the redactor is in flight; an empty key refuses to start.
Each failed on the code before issue 17 (the reproductions are in docs/BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import socket
import string
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from serve_support import API_KEY, Server, ev, journey, row  # noqa: E402

from clickintent.serve.live import LiveSessions  # noqa: E402
from clickintent.serve.schemas import IntentRequest  # noqa: E402

READ_TIMEOUT = 1.0
MAX_CONNECTIONS = 20
AUTH = {"X-API-Key": API_KEY}

# --- unit -----------------------------------------------------------------------------------------


def test_live_session_ids_are_issued_not_chosen() -> None:
    # Issue 17: any client holding the shared key could read another's session by guessing its id.
    live = LiveSessions()
    key, _ = live.start([row(0)])
    other, _ = live.start([row(0)])
    assert key != other and len(key) >= 32 and re.fullmatch(r"[A-Za-z0-9_-]+", key)
    assert live.append("visitor-42", [row(1)]) is None  # an id it never issued: nothing is made or read
    got = live.append(key, [row(1)])
    assert len(live) == 2 and got is not None and got[0].n_events == 2


@pytest.mark.parametrize("text", ["plain ascii title of a page", "Cartes 💳 — カード — بطاقات — ñandú «crédito»"])
def test_the_live_byte_cap_counts_real_bytes(text: str) -> None:
    # Issue 17: counting characters let text outside Latin-1 use ~2.1x the budget. Measure what is held.
    cap = 4 << 20
    live = LiveSessions(max_sessions=10**6, max_bytes=cap)
    tracemalloc.start()
    try:
        for i in range(3000):  # far more than fits
            rows = [{**row(i * 100 + j, f"bank.example/{i}/{j}"), "page_title": f"{text} {i} {j}" * 4}
                    for j in range(8)]  # fmt: skip
            live.start(rows)
            del rows
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert live.stats.evicted > 0 and live.bytes <= cap
    assert held <= cap * 1.1, (held, live.bytes)  # what Python holds stays inside the cap (was 1.3x and 2.2x)
    assert held >= live.bytes * 0.7  # and the count is not a loose over-estimate


def test_every_cache_on_the_serving_path_is_bounded_by_bytes(bundles: dict[str, Path]) -> None:
    from clickintent import urls
    from clickintent.cache import BoundedCache
    from clickintent.serve import clean
    from clickintent.serve.model import ServingModel

    model = ServingModel.load(bundles["a"], engine="torch", text_cache=bundles["text"])
    f = model.featurizer
    caches = [urls._cache, clean._UNCHANGED, f._pages, f._referrers, f._hosts, f.text._memory]
    assert all(isinstance(c, BoundedCache) and c.max_bytes <= 256 << 20 for c in caches)
    # 3,000 unique 8 KB URLs (24 MB of text) through redaction, page ids and the featurizer
    r = random.Random(0)
    for i in range(30):
        events = [ev(f"{i}/{j}/" + "".join(r.choices(string.ascii_lowercase, k=8000)), j, page_title=f"t{i} {j}")
                  for j in range(100)]  # fmt: skip
        rows, _ = clean.clean_session(IntentRequest.model_validate({"events": events}).events, Counter())
        model.encode([rows], [False])
    assert all(c.nbytes <= c.max_bytes for c in caches)
    assert f._pages.nbytes > 8000 * 1000 and urls._cache.nbytes > 8000 * 1000  # the URLs went through them ...
    assert sum(c.nbytes for c in caches) < 300 << 20  # ... and it holds no more than its bound


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01"])
def test_offset_timestamps_out_of_range_are_a_validation_error(ts: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="out of range"):  # was an OverflowError: a 500
        IntentRequest.model_validate({"events": [{"ts": ts, "url": "https://bank.example/"}]})


# --- integration ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("log") / "guarded.log"
    s = Server(bundles["a"], log, "--text-cache", str(bundles["text"]), "--read-timeout", str(READ_TIMEOUT),
               "--max-connections", str(MAX_CONNECTIONS), api_key=API_KEY)  # fmt: skip
    yield s
    s.stop()


def _read_until_closed(sock: socket.socket, seconds: float) -> tuple[bytes, float | None]:
    """What the server sends on `sock` and the seconds until it closes it (None: still open after `seconds`)."""
    t0 = time.perf_counter()
    sock.settimeout(seconds)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except TimeoutError:
        return got, None
    except ConnectionResetError:
        pass
    return got, time.perf_counter() - t0


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    return _read_until_closed(sock, seconds)[1]


@pytest.mark.integration
def test_the_key_is_checked_before_the_body(guarded: Server) -> None:
    with httpx.Client(base_url=guarded.url, timeout=30) as c:
        malformed = c.post("/v1/embed", content=b'{"events": [', headers={"content-type": "application/json"})
        assert malformed.status_code == 401 and "API key" in malformed.json()["detail"]  # was 422
        assert c.post("/v1/nowhere", json={}).status_code == 401  # routes are not revealed either
        big = c.post("/v1/embed", content=b"x" * (2 << 20), headers={"content-type": "application/json"})
        assert big.status_code == 401
        assert c.get("/healthz").status_code == 200
        assert c.post("/v1/embed", content=b'{"events": [', headers={**AUTH, "content-type": "application/json"}
                      ).status_code == 422  # fmt: skip
        for ts in ("0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01"):
            r = c.post("/v1/embed", json={"events": [{"ts": ts, "url": "https://bank.example/"}]}, headers=AUTH)
            assert r.status_code == 422, r.text  # was 500


@pytest.mark.integration
def test_half_sent_requests_and_silent_connections_are_closed(guarded: Server) -> None:
    addr = ("127.0.0.1", guarded.port)
    with socket.create_connection(addr) as silent, socket.create_connection(addr) as headers:
        headers.sendall(b"POST /v1/embed HTTP/1.1\r\nHost: x\r\nX-API-Key: ")
        for s in (silent, headers):
            took = _closed_within(s, READ_TIMEOUT + 5)
            assert took is not None and took < READ_TIMEOUT + 2  # was: held open with no limit
    with socket.create_connection(addr) as body:
        body.sendall(f"POST /v1/embed HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\nContent-Type: application/json"
                     "\r\nContent-Length: 1000\r\n\r\n{\"events\": [".encode())  # fmt: skip
        answer, took = _read_until_closed(body, READ_TIMEOUT + 5)
        assert answer.startswith(b"HTTP/1.1 408") and b"not received within" in answer and took is not None
    with socket.create_connection(addr) as huge:  # headers without end are cut at 64 KiB: 400 and closed
        huge.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * (100 << 10))
        took = _closed_within(huge, READ_TIMEOUT + 5)  # (the 400 may be lost to the reset of the unread rest)
        assert took is not None and took < READ_TIMEOUT / 2
    with httpx.Client(base_url=guarded.url, timeout=30) as c:  # and the service goes on
        assert c.post("/v1/embed", json={"events": journey("cards", 3)}, headers=AUTH).status_code == 200


@pytest.mark.integration
def test_connections_past_the_bound_are_closed_on_arrival(guarded: Server) -> None:
    socks = [socket.create_connection(("127.0.0.1", guarded.port)) for _ in range(MAX_CONNECTIONS + 15)]
    try:
        time.sleep(0.3)  # well inside the read deadline: only the bound closes anything yet
        readable, _, _ = select.select(socks, [], [], 0.2)
        closed = sum(1 for s in readable if s.recv(1) == b"")
        assert closed >= 15 - 1 and closed <= 15  # (one slot may still be held by the fixture's last client)
    finally:
        for s in socks:
            s.close()
    time.sleep(0.2)
    assert httpx.get(guarded.url + "/healthz", timeout=10).status_code == 200


def _worst_body() -> bytes:
    """About 1 MiB of the text the redactor works hardest on, in 8 KB URLs (issue 17's request did 23 s)."""
    r = random.Random(0)
    slow = ["/123456/" + "".join(r.choices(string.ascii_lowercase, k=8100)), "?" + "token=b&" * 1000,
            "/" + "1 2 3 4 5 6 7 8 9 0 " * 400, "/" + "4111 1111 1111 1112 " * 400]  # fmt: skip
    events = [{"ts": "2025-03-01T09:00:00Z", "url": ("https://bank.example" + slow[i % 4])[:8192]} for i in range(124)]
    return json.dumps({"events": events}).encode()


@pytest.mark.integration
def test_a_heavy_request_does_not_stall_the_service(guarded: Server) -> None:
    body = _worst_body()
    assert len(body) <= 1 << 20
    done: list[float] = []

    def heavy() -> None:
        t0 = time.perf_counter()
        r = httpx.post(guarded.url + "/v1/embed", content=body, headers={**AUTH, "content-type": "application/json"},
                       timeout=120)  # fmt: skip
        assert r.status_code == 200, r.text
        done.append(time.perf_counter() - t0)

    latencies = []
    with httpx.Client(base_url=guarded.url, timeout=30) as c:
        c.get("/healthz")
        t = threading.Thread(target=heavy)
        t.start()
        while t.is_alive() or not latencies:
            t0 = time.perf_counter()
            assert c.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.005)
        t.join()
    latencies.sort()
    assert done and len(latencies) >= 5
    # wall time on a shared machine: loose bounds here (was 22-36 s behind the request); the p99 under
    # 50 ms is measured by benchmarks/bench_serve_limits.py on a quiet machine (docs/BENCHMARKS.md)
    assert latencies[len(latencies) // 2] < 0.05 and latencies[-1] < 1.0, latencies[-5:]


@pytest.mark.integration
def test_a_dead_redaction_worker_is_replaced(guarded: Server) -> None:
    body = _worst_body()
    post = lambda: httpx.post(guarded.url + "/v1/embed", content=body, timeout=120,  # noqa: E731
                              headers={**AUTH, "content-type": "application/json"})  # fmt: skip
    assert post().status_code == 200  # the worker process exists now
    children = subprocess.run(["pgrep", "-P", str(guarded.proc.pid)], capture_output=True, text=True).stdout.split()
    workers = [int(p) for p in children if "spawn" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]
    assert workers
    for pid in workers:
        os.kill(pid, 9)
    time.sleep(0.5)
    assert post().status_code == 200


@pytest.mark.integration
def test_live_sessions_answer_only_to_their_issued_id(guarded: Server) -> None:
    with httpx.Client(base_url=guarded.url, timeout=30, headers=AUTH) as c:
        first = c.post("/v1/sessions", json={"events": journey("cards", 2)})
        assert first.status_code == 201
        sid = first.json()["session_id"]
        guess = c.post("/v1/sessions/visitor-42/events", json={"events": [ev("help", 100)]})
        assert guess.status_code == 404 and "POST /v1/sessions" in guess.json()["detail"]
        more = c.post(f"/v1/sessions/{sid}/events", json={"events": [ev("help", 100)]}).json()
        assert more["session_id"] == sid and more["n_events"] == 3
        assert c.post("/v1/sessions", json={"events": journey("cards", 1)}).json()["session_id"] != sid


@pytest.mark.integration
@pytest.mark.parametrize("key", ["", "   "])
def test_an_empty_key_refuses_to_start(bundles: dict[str, Path], key: str) -> None:
    env = {**os.environ, "CLICKINTENT_API_KEY": key}
    cmd = [sys.executable, "-c", "from clickintent.cli import main; main()", "serve", "--bundle", str(bundles["a"]),
           "--port", "9"]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "CLICKINTENT_API_KEY is set but empty" in out.stderr  # was "open to anyone"
    assert "Traceback" not in out.stderr and "open to anyone" not in out.stderr
