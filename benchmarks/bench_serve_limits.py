"""The service under hostile load (issue 17): a heavy request beside /healthz, unique-URL memory, slow clients.

Three modes, each against a real `clickintent serve` (toy bundle unless --bundle) with an API key:

- adversarial: one worst-case request at a time (about 1 MiB of the text the redactor works hardest on,
  in 8 KB URLs; `--kind issue` sends the issue's own 100 x 8 KB request instead; --bodies distinct ones in
  turn, so no cache answers them) is kept in flight for --seconds, while a second client asks /healthz
  every 10 ms; /healthz latency p50/p99/max with and without the heavy request, and the heavy request's
  own time. Goal: p99 under 50 ms.
- memory: --requests /v1/embed requests whose every event has a unique URL (--url-chars long) and a
  unique title; the server's RSS every --sample requests, and the text cache's rows on disk. Goal: RSS
  levels off inside the documented bounds (docs/SERVICE.md, "Memory").
- slow: --connections connections each send half a request (headers, or headers and part of a body)
  and stop; how many the server still holds open after 1 s, after the read timeout + 2 s, and at the end.

`--pythonpath DIR` runs the server from another checkout (e.g. the code before issue 17, for the
"before" figures), with only the options that code knows.

    python -m benchmarks.bench_serve_limits adversarial --seconds 30
    python -m benchmarks.bench_serve_limits memory --requests 10000
    python -m benchmarks.bench_serve_limits slow --connections 2000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sqlite3
import string
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_serve import Server, ensure_bundle
from benchmarks.bench_taxonomy import emit

KEY = "bench-limits-key"
HEADERS = {"X-API-Key": KEY, "content-type": "application/json"}


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(values) * 1e3, q)), 2)


def worst_body(kind: str, seed: int = 0) -> bytes:
    """About 1 MiB of request (see the module doc); each seed gives other text, so no cache can answer it."""
    r = random.Random(seed)
    if kind == "issue":  # issue 17's reproduction, verbatim
        events = [{"ts": "2025-03-01T09:00:00Z",
                   "url": "https://bank.example/123456/" + "".join(r.choices(string.ascii_lowercase, k=8100))}
                  for _ in range(100)]  # fmt: skip
        return json.dumps({"events": events}).encode()
    slow = ["/123456/" + "".join(r.choices(string.ascii_lowercase, k=8100)), "?" + "token=b&" * 1000,
            "/" + "1 2 3 4 5 6 7 8 9 0 " * 400, "/" + "4111 1111 1111 1112 " * 400, "/" + "a@b.cc " * 1150,
            "/" + "%25" * 2700]  # fmt: skip
    events = [{"ts": "2025-03-01T09:00:00Z", "url": (f"https://bank.example/{seed}-{i}" + slow[i % len(slow)])[:8192]}
              for i in range(124)]  # fmt: skip
    return json.dumps({"events": events}).encode()


def poll_health(url: str, stop: threading.Event, out: list[float]) -> None:
    import httpx

    with httpx.Client(base_url=url, timeout=60) as c:
        while not stop.is_set():
            t0 = time.perf_counter()
            c.get("/healthz")
            out.append(time.perf_counter() - t0)
            stop.wait(0.01)


def run_adversarial(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    import httpx

    bodies = [worst_body(args.kind, seed) for seed in range(args.bodies)]  # cycled: more than any cache holds
    body = bodies[0]
    quiet: list[float] = []
    stop = threading.Event()
    t = threading.Thread(target=poll_health, args=(server.url, stop, quiet))
    t.start()
    time.sleep(min(args.seconds / 3, 10))
    stop.set()
    t.join()
    busy: list[float] = []
    heavy: list[float] = []
    statuses: list[int] = []
    stop = threading.Event()
    t = threading.Thread(target=poll_health, args=(server.url, stop, busy))
    with httpx.Client(base_url=server.url, timeout=600) as c:
        c.post("/v1/embed", content=body, headers=HEADERS)  # warm-up
        t.start()
        t_end = time.time() + args.seconds
        while time.time() < t_end:
            t0 = time.perf_counter()
            body = bodies[(len(heavy) + 1) % len(bodies)]
            statuses.append(c.post("/v1/embed", content=body, headers=HEADERS).status_code)
            heavy.append(time.perf_counter() - t0)
    stop.set()
    t.join()

    def stats(xs: list[float]) -> dict[str, Any]:
        return {"n": len(xs), "p50_ms": pct(xs, 50), "p99_ms": pct(xs, 99), "max_ms": pct(xs, 100)}

    return {
        "kind": args.kind, "body_bytes": len(body), "heavy_requests": len(heavy),
        "heavy_statuses": sorted(set(statuses)), "heavy_p50_ms": pct(heavy, 50), "heavy_max_ms": pct(heavy, 100),
        "healthz_quiet": stats(quiet), "healthz_beside_heavy": stats(busy),
    }  # fmt: skip


def text_cache_rows(path: Path) -> int:
    total = 0
    for db in path.glob("*.sqlite"):
        with sqlite3.connect(db) as con:
            total += con.execute("SELECT count(*) FROM vectors").fetchone()[0]
    return total


def run_memory(args: argparse.Namespace, server: Server, text_cache: Path) -> dict[str, Any]:
    import httpx

    r = random.Random(0)
    letters = string.ascii_lowercase
    samples = [(0, server.rss_mb(), 0)]
    t0 = time.time()
    errors = 0
    with httpx.Client(base_url=server.url, headers={"X-API-Key": KEY}, timeout=120) as c:
        for i in range(1, args.requests + 1):
            events = [{"ts": f"2025-03-01T09:{j // 60:02d}:{j % 60:02d}Z",
                       "url": f"https://bank.example/{i}/{j}/" + "".join(r.choices(letters, k=args.url_chars)),
                       "page_title": f"title {i} {j} " + "".join(r.choices(letters + " ", k=args.title_chars))}
                      for j in range(args.events)]  # fmt: skip
            errors += c.post("/v1/embed", json={"events": events}).status_code != 200
            if i % args.sample == 0:
                samples.append((i, server.rss_mb(), text_cache_rows(text_cache)))
                print(json.dumps({"requests": i, "rss_mb": samples[-1][1], "seconds": round(time.time() - t0)}),
                      file=sys.stderr)  # fmt: skip
    rss = [s[1] for s in samples]
    half = len(samples) // 2
    return {
        "requests": args.requests, "events_per_request": args.events, "url_chars": args.url_chars,
        "title_chars": args.title_chars, "errors": errors, "seconds": round(time.time() - t0, 1),
        "rss_mb_start": rss[0], "rss_mb_end": rss[-1], "rss_mb_max": max(rss),
        "rss_mb_at_half": rss[half], "growth_second_half_mb": round(rss[-1] - rss[half], 1),
        "samples": [{"requests": n, "rss_mb": m, "text_cache_rows": k} for n, m, k in samples],
    }  # fmt: skip


def open_sockets(server: Server) -> int:
    """Established connections to the server's port, counted by the kernel (ss)."""
    import subprocess

    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{server.port} )"],
                         capture_output=True, text=True).stdout  # fmt: skip
    return len([ln for ln in out.splitlines() if ln.strip()])


def run_slow(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    socks = []
    refused = 0
    t0 = time.time()
    for i in range(args.connections):
        try:
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        except OSError:
            refused += 1
            continue
        head = b"POST /v1/embed HTTP/1.1\r\nHost: x\r\nX-API-Key: " + KEY.encode()
        if i % 2:  # whole headers, part of the body
            head += b'\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"events": ['
        s.sendall(head)
        socks.append(s)
    opened = time.time() - t0
    counts = {}
    for label, wait in (("after_1s", 1.0), ("after_timeout_plus_2s", args.read_timeout + 1.0), ("after_60s", None)):
        time.sleep(wait if wait is not None else max(0.0, 60 - (time.time() - t0)))
        counts[label] = open_sockets(server)
    for s in socks:
        s.close()
    return {"connections": args.connections, "connect_refused": refused, "open_seconds": round(opened, 2),
            "server_side_open": counts}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["adversarial", "memory", "slow"], help="what to measure (see above)")
    ap.add_argument("--bundle", default=None, help="bundle to serve (default: build a toy one)")
    ap.add_argument("--pythonpath", default=None, help="serve the clickintent package found in this directory")
    ap.add_argument("--seconds", type=float, default=30, help="adversarial: how long heavy requests are sent")
    ap.add_argument("--kind", choices=["worst", "issue"], default="worst", help="adversarial: the heavy body")
    ap.add_argument("--bodies", type=int, default=60, help="adversarial: distinct heavy bodies, sent in turn")
    ap.add_argument("--requests", type=int, default=10_000, help="memory: requests with unique URLs")
    ap.add_argument("--events", type=int, default=10, help="memory: events per request")
    ap.add_argument("--url-chars", type=int, default=8000, help="memory: random characters per URL")
    ap.add_argument("--title-chars", type=int, default=1000, help="memory: random characters per title")
    ap.add_argument("--sample", type=int, default=500, help="memory: requests between RSS samples")
    ap.add_argument("--connections", type=int, default=2000, help="slow: half-sent requests")
    ap.add_argument("--read-timeout", type=float, default=10.0, help="the server's --read-timeout (new code)")
    ap.add_argument("--out", type=Path, default=None, help="also write the results JSON here")
    args = ap.parse_args()

    os.environ["CLICKINTENT_API_KEY"] = KEY
    bundle = ensure_bundle(args.bundle).resolve()
    args.out = args.out.resolve() if args.out else None
    if args.pythonpath:
        os.environ["PYTHONPATH"] = args.pythonpath
        os.chdir(args.pythonpath)  # `python -c` puts the working directory first on sys.path
    text_cache = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-limits-text-{os.getpid()}"
    text_cache.mkdir(parents=True, exist_ok=True)
    extra = ["--text-cache", str(text_cache)]
    if not args.pythonpath:
        extra += ["--read-timeout", str(args.read_timeout)]
    before = os.getloadavg()
    server = Server(bundle, 1, "auto", extra)
    try:
        if args.mode == "adversarial":
            result = run_adversarial(args, server)
        elif args.mode == "memory":
            result = run_memory(args, server, text_cache)
        else:
            result = run_slow(args, server)
    finally:
        server.stop()
    result |= {"mode": args.mode, "code": args.pythonpath or "this checkout",
               "loadavg_before": [round(x, 2) for x in before],
               "loadavg_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}  # fmt: skip
    emit(result, args.out)


if __name__ == "__main__":
    main()
