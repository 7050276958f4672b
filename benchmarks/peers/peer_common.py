"""Shared plumbing for the peer comparisons: a peer's own virtualenv, versions, results, tables.

Peers never become dependencies of clickintent. Each script creates (once) a virtualenv under
`benchmarks/peers/.venvs/NAME` with pip, installs the peer there with torch pinned to the local CPU wheel
(`torch==2.13.0`; unpinned, pip would pull a multi-GB CUDA build), and runs a small worker script inside it
(`benchmarks/peers/_*_worker.py`), exchanging plain files (NumPy arrays, Parquet, JSON) with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PEERS = Path(__file__).resolve().parent
ROOT = PEERS.parents[1]
VENVS = PEERS / ".venvs"
RESULTS = PEERS / "results"
TORCH_PIN = "torch==2.13.0"

if str(ROOT) not in sys.path:  # run as a file (python benchmarks/peers/x.py) as well as with -m
    sys.path.insert(0, str(ROOT))


def peer_env() -> dict[str, str]:
    """Environment for a worker: the same OpenMP policy clickintent's benchmarks use on this shared box."""
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("PYTHONWARNINGS", "ignore")
    env["PYTHONPATH"] = ""  # the worker must not see clickintent or the main venv
    return env


def ensure_venv(
    name: str, requirements: list[str], venv_dir: Path | None = None, no_deps: list[str] | None = None
) -> tuple[Path, float]:
    """Python of a virtualenv holding `requirements` (created and installed on first use, or when they change).

    `no_deps` are installed first without their declared dependencies (e.g. BERTopic, whose
    sentence-transformers -> torch chain the benchmark does not need: it passes vectors in).
    Returns (python, seconds spent installing; 0 when the venv was already there).
    """
    venv = venv_dir or VENVS / name
    python = venv / "bin" / "python"
    stamp = venv / ".clickintent-peer.json"
    no_deps = no_deps or []
    want = hashlib.sha256("\n".join([*no_deps, "--", *requirements]).encode()).hexdigest()
    if python.exists() and stamp.exists() and json.loads(stamp.read_text()).get("sha256") == want:
        return python, 0.0
    t0 = time.perf_counter()
    print(f"[peers] creating {venv} and installing {' '.join(requirements)} (pip, once)", file=sys.stderr, flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    if no_deps:
        subprocess.run([*pip, "--no-deps", *no_deps], check=True)
    subprocess.run([*pip, *requirements], check=True)
    stamp.write_text(json.dumps({"requirements": requirements, "no_deps": no_deps, "sha256": want}) + "\n")
    return python, time.perf_counter() - t0


def versions(python: Path, packages: list[str]) -> dict[str, str]:
    """Installed versions of `packages` in the venv of `python` (missing ones are left out)."""
    code = (
        "import json, sys\nfrom importlib.metadata import version, PackageNotFoundError\nout = {}\n"
        "for p in sys.argv[1:]:\n    try: out[p] = version(p)\n    except PackageNotFoundError: pass\n"
        "out['python'] = sys.version.split()[0]\nprint(json.dumps(out))"
    )
    proc = subprocess.run([str(python), "-c", code, *packages], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def run_worker(python: Path, worker: str, args: list[str], cwd: Path) -> float:
    """Run `benchmarks/peers/WORKER` in the peer's venv, in `cwd` (where it may leave logs: RecBole writes
    log_tensorboard/ there); its output streams through. Returns the wall seconds."""
    cwd.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    subprocess.run([str(python), str(PEERS / worker), *args], check=True, env=peer_env(), cwd=str(cwd))
    return time.perf_counter() - t0


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
    }


def write_result(name: str, result: dict[str, Any], out: Path | None = None) -> Path:
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, 3)


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (pipes), readable in a terminal and pasteable into docs."""
    cells = [[str(h) for h in header]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    fmt = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([fmt(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, cells[1:])])


def rel(path: Path | str) -> str:
    """`path` relative to the repository root when it lies inside it, else absolute."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)
