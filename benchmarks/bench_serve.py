"""Scoring-service speed: in-process latency, HTTP throughput on loopback, and a memory soak.

Three modes (all build a default-size toy bundle with clickintent.serve.toy unless --bundle is given; the
request is one 20-event toy session, sent as JSON):

- inprocess: redact + encode + classify one session on one thread, p50/p99 over --calls, for each engine
  (torch, onnx) with and without the leave-one-out explanation; wall time, and the thread's CPU time
  (which excludes the time other processes of a shared machine held the core). No HTTP.
- http: starts `clickintent serve` on a free port and drives it with wrk (Debian package `wrk`) at fixed
  --concurrency for at least --requests requests (wrk runs for a duration: a 5 s probe sets it);
  throughput, p50, p99 and errors (non-2xx and socket errors) per route. Falls back to an async httpx
  client when wrk is missing.
- soak: the same server under a mixed load (intent, embed, new live sessions) for --minutes
  (default 10) or --requests, whichever ends first; the server's RSS is sampled every --sample seconds
  and compared between the end of the warm-up and the end of the run.

    python -m benchmarks.bench_serve inprocess
    python -m benchmarks.bench_serve http --requests 100000 --concurrency 16
    python -m benchmarks.bench_serve soak --minutes 10

Each run prints one JSON object (with the load average before and after: the machine is shared).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see clickintent/encoder/__init__.py

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROUTES: dict[str, tuple[str, dict[str, Any]]] = {
    "intent": ("/v1/intent", {}),
    "intent-noexplain": ("/v1/intent", {"explain": False}),
    "embed": ("/v1/embed", {}),
    "live": ("/v1/sessions", {"clicks": 1}),  # one click per request, each a new live session (server-issued id)
}

WRK_SCRIPT = r"""
-- POST one body to the given paths in turn ({rand}: a random key); report percentiles as JSON at the end.
local f = io.open(os.getenv("BODY"), "r"); local body = f:read("*a"); f:close()
local paths = {}
for p in string.gmatch(os.getenv("PATHS"), "[^,]+") do paths[#paths + 1] = p end
local i = 0
function request()
  i = i + 1
  local p = paths[(i % #paths) + 1]:gsub("{rand}", tostring(math.random(1, 200000)))
  return wrk.format("POST", p, {["Content-Type"] = "application/json"}, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "seconds": %.3f, "non2xx": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"timeout": %d, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
"""


def session_events(n_events: int = 20, seed: int = 5) -> list[dict[str, Any]]:
    from clickintent.encoder.toy import toy_sessions

    table, _ = toy_sessions(1, seed=seed, fixed_length=n_events)
    return [
        {"ts": e["ts"].isoformat(), "url": "https://" + e["page"], "page_title": e["page_title"],
         "event_type": e["event_type"], "device": e["device"], "referrer": e["referrer"],
         "search_query": e["search_query"], "dwell_ms": e["dwell_ms"]}
        for e in table.to_pylist()[0]["events"]
    ]  # fmt: skip


def ensure_bundle(path: str | None, inputs: str = "embedding") -> Path:
    if path:
        return Path(path)
    from clickintent.distill.features import check_inputs
    from clickintent.serve.toy import DEFAULT_CONFIG, toy_bundle

    out = Path(tempfile.mkdtemp(prefix="bench-serve-")) / "bundle"
    print(f"building a default-size toy bundle in {out} ...", file=sys.stderr)
    return toy_bundle(out, sessions=2000, epochs=1, config=DEFAULT_CONFIG, inputs=check_inputs(inputs))


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(values), q)), 3)


# --- in-process -----------------------------------------------------------------------------------


def run_inprocess(args: argparse.Namespace, bundle: Path) -> dict[str, Any]:
    import torch

    from clickintent.serve.clean import clean_session
    from clickintent.serve.model import ServingModel
    from clickintent.serve.schemas import IntentRequest

    torch.set_num_threads(1)
    request = IntentRequest.model_validate({"events": session_events(args.events)})
    out: dict[str, Any] = {"events": args.events, "calls": args.calls}
    for engine in ("torch", "onnx"):
        model = ServingModel.load(bundle, engine=engine, threads=1)
        for explain in (False, True):

            def call(model: ServingModel = model, explain: bool = explain) -> None:
                rows, _ = clean_session(request.events, Counter())
                model.encode([rows], [explain])

            for _ in range(50):
                call()
            p50, p99, cpu50, cpu99 = [], [], [], []
            for _ in range(args.repeats):
                lat, cpu = [], []
                for _ in range(args.calls):
                    t, c = time.perf_counter(), time.thread_time()
                    call()
                    cpu.append((time.thread_time() - c) * 1e3)
                    lat.append((time.perf_counter() - t) * 1e3)
                p50.append(pct(lat, 50))
                p99.append(pct(lat, 99))
                cpu50.append(pct(cpu, 50))
                cpu99.append(pct(cpu, 99))
            key = f"{engine}{'_explain' if explain else ''}"
            # wall time counts the waits of a shared machine; this thread's CPU time does not
            out[key] = {
                "p50_ms": statistics.median(p50), "p99_ms": statistics.median(p99), "runs_p99_ms": p99,
                "cpu_p50_ms": statistics.median(cpu50), "cpu_p99_ms": statistics.median(cpu99),
            }  # fmt: skip
    return out


# --- HTTP -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`clickintent serve` in a subprocess, waited for until /readyz answers."""

    def __init__(self, bundle: Path, workers: int, engine: str, extra: list[str] | None = None) -> None:
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="bench-serve-", suffix=".log", delete=False)  # noqa: SIM115
        cmd = [sys.executable, "-c", "from clickintent.cli import main; main()", "serve", "--bundle", str(bundle),
               "--port", str(self.port), "--workers", str(workers), "--engine", engine, "--log-level", "warning",
               *(extra or [])]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 120
        import httpx

        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("server did not become ready in 120 s")

    def pids(self) -> list[int]:
        """The server process and its children (workers)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        return [self.proc.pid, *map(int, out)]

    def rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return round(total / 1024, 1)

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server process and its workers (user + system)."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat(5))
            except (OSError, IndexError, ValueError):
                pass
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_wrk(url: str, paths: list[str], body: dict[str, Any], requests: int, concurrency: int, threads: int,
            max_seconds: float) -> dict[str, Any]:  # fmt: skip
    """wrk runs for a duration, not a count: a 5 s run measures the rate, then the run lasts long enough
    for `requests` requests at that rate (plus 5%), capped at `max_seconds`."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-wrk-"))
    (tmp / "body.json").write_text(json.dumps(body))
    (tmp / "script.lua").write_text(WRK_SCRIPT)
    env = {**os.environ, "BODY": str(tmp / "body.json"), "PATHS": ",".join(paths)}

    def wrk(seconds: int) -> dict[str, Any]:
        cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s",
               "-s", str(tmp / "script.lua"), url]  # fmt: skip
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        line = next(ln for ln in out.splitlines() if ln.startswith("WRKJSON "))
        stats: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
        return stats

    probe = wrk(5)
    rate = max(probe["requests"] / probe["seconds"], 1.0)
    seconds = int(min(max_seconds, max(5, requests / rate * 1.05 + 1)))
    stats = wrk(seconds)
    errors = sum(stats[k] for k in ("non2xx", "connect", "read", "write", "timeout"))
    stats |= {"errors": errors, "error_rate": errors / max(stats["requests"], 1),
              "req_per_s": round(stats["requests"] / stats["seconds"], 1), "tool": "wrk",
              "probe_requests": probe["requests"]}  # fmt: skip
    return stats


def run_httpx(url: str, paths: list[str], body: dict[str, Any], requests: int, concurrency: int,
              max_seconds: float) -> dict[str, Any]:  # fmt: skip
    import random

    import httpx

    lat: list[float] = []
    errors = 0
    left = requests
    t_end = time.perf_counter() + max_seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal left, errors
        while left > 0 and time.perf_counter() < t_end:
            left -= 1
            path = random.choice(paths).replace("{rand}", str(random.randint(1, 200_000)))
            t = time.perf_counter()
            try:
                r = await client.post(path, json=body)
                errors += r.status_code >= 300
            except httpx.HTTPError:
                errors += 1
            lat.append((time.perf_counter() - t) * 1e3)

    async def main() -> float:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:
            t0 = time.perf_counter()
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))
            return time.perf_counter() - t0

    seconds = asyncio.run(main())
    return {"requests": len(lat), "seconds": round(seconds, 3), "req_per_s": round(len(lat) / seconds, 1),
            "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "errors": errors,
            "error_rate": errors / max(len(lat), 1), "tool": "httpx"}  # fmt: skip


def load(server: Server, args: argparse.Namespace, paths: list[str], body: dict[str, Any], requests: int,
         max_seconds: float) -> dict[str, Any]:  # fmt: skip
    if shutil.which("wrk") and not args.httpx:
        return run_wrk(server.url, paths, body, requests, args.concurrency, args.threads, max_seconds)
    return run_httpx(server.url, paths, body, requests, args.concurrency, max_seconds)


def run_http(args: argparse.Namespace, bundle: Path) -> dict[str, Any]:
    events = session_events(args.events)
    server = Server(bundle, args.workers, args.engine)
    out: dict[str, Any] = {"requests": args.requests, "concurrency": args.concurrency, "workers": args.workers,
                           "engine": args.engine, "events": args.events}  # fmt: skip
    try:
        for name in args.routes.split(","):
            path, extra = ROUTES[name][0], dict(ROUTES[name][1])
            body = {"events": events[: extra.pop("clicks", len(events))], **extra}
            load(server, args, [path], body, 1000, 10)  # warm-up
            runs = []
            for _ in range(args.repeats):
                cpu = server.cpu_seconds()
                runs.append(load(server, args, [path], body, args.requests, args.max_seconds))
                # server CPU per answered request: 1000 / this = the requests/s one free core could serve,
                # whatever else shares the machine
                answered = runs[-1]["requests"] + runs[-1].get("probe_requests", 0)
                runs[-1]["server_cpu_ms_per_request"] = round((server.cpu_seconds() - cpu) * 1e3 / answered, 3)
                print(json.dumps({name: runs[-1]}), file=sys.stderr)
            out[name] = {
                "median_req_per_s": statistics.median(r["req_per_s"] for r in runs),
                "median_p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "median_p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "median_server_cpu_ms_per_request": statistics.median(r["server_cpu_ms_per_request"] for r in runs),
                "requests": sum(r["requests"] for r in runs),
                "errors": sum(r["errors"] for r in runs),
                "runs": runs,
            }
    finally:
        server.stop()
    return out


def run_soak(args: argparse.Namespace, bundle: Path) -> dict[str, Any]:
    import threading

    events = session_events(args.events)
    server = Server(bundle, args.workers, args.engine, ["--live-max-sessions", str(args.live_max_sessions)])
    paths = ["/v1/intent", "/v1/embed", "/v1/sessions", "/v1/sessions"]  # live: new sessions, ids issued by the server
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        t0 = time.time()
        while not stop.is_set():
            samples.append((round(time.time() - t0, 1), server.rss_mb()))
            stop.wait(args.sample)

    try:
        load(server, args, paths, {"events": events}, 1000, 10)  # warm-up: caches, allocator
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        result = load(server, args, paths, {"events": events}, args.requests, args.minutes * 60)
        stop.set()
        sampler.join()
        samples.append((samples[-1][0] if samples else 0.0, server.rss_mb()))
        metrics = __import__("httpx").get(server.url + "/metrics", timeout=10).text
    finally:
        server.stop()
    start, end = samples[0][1], samples[-1][1]
    # the live-session store grows until it reaches its bound (--live-max-sessions): memory is "flat" from
    # the first sample after --settle seconds on
    settled = next((rss for t, rss in samples if t >= args.settle), end)
    live = [ln for ln in metrics.splitlines() if ln.startswith("clickintent_live_") and "_created" not in ln]
    return {"minutes": args.minutes, "load": result, "rss_mb_start": start, "rss_mb_end": end,
            "rss_mb_max": max(s[1] for s in samples), "rss_change": round(end / start - 1, 4),
            "settle_s": args.settle, "rss_mb_settled": settled, "rss_change_after_settle": round(end / settled - 1, 4),
            "rss_samples": samples[:: max(1, len(samples) // 20)], "live_metrics": live}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["inprocess", "http", "soak"], help="what to measure (see above)")
    parser.add_argument("--bundle", default=None, help="bundle to serve (default: build a toy one)")
    parser.add_argument("--events", type=int, default=20, help="events per session in the request")
    parser.add_argument("--calls", type=int, default=2000, help="inprocess: timed calls per variant and repeat")
    parser.add_argument("--repeats", type=int, default=3, help="inprocess/http: runs per variant (medians reported)")
    parser.add_argument("--requests", type=int, default=100_000, help="http/soak: requests per route (at most)")
    parser.add_argument("--max-seconds", type=float, default=600, help="http: time limit per route")
    parser.add_argument("--minutes", type=float, default=10, help="soak: duration")
    parser.add_argument("--sample", type=float, default=10, help="soak: seconds between RSS samples")
    parser.add_argument("--settle", type=float, default=180, help="soak: seconds for the live store to fill")
    parser.add_argument("--live-max-sessions", type=int, default=10_000, help="soak: the server's live-session cap")
    parser.add_argument("--concurrency", type=int, default=16, help="open connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--engine", default="auto", choices=["auto", "onnx", "torch"], help="server engine")
    parser.add_argument("--routes", default="intent,intent-noexplain,embed,live", help="http: routes to load")
    parser.add_argument("--inputs", default="embedding", choices=["embedding", "embedding+text"],
                        help="what the toy bundle's classifier reads (clickintent.distill.features)")
    parser.add_argument("--httpx", action="store_true", help="use the httpx client even if wrk is installed")
    args = parser.parse_args()
    if args.mode == "soak" and args.requests == parser.get_default("requests"):
        args.requests = 10**9  # bounded by --minutes

    bundle = ensure_bundle(args.bundle, args.inputs)
    before = os.getloadavg()
    t0 = time.time()
    runner = {"inprocess": run_inprocess, "http": run_http, "soak": run_soak}[args.mode]
    result = runner(args, bundle)
    result |= {"mode": args.mode, "seconds": round(time.time() - t0, 1),
               "loadavg_before": [round(x, 2) for x in before],
               "loadavg_after": [round(x, 2) for x in os.getloadavg()],
               "cpus": os.cpu_count(), "repeats": args.repeats, "inputs": args.inputs}  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
