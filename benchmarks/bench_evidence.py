"""The evidence grid (issue 18, docs/EVALUATION.md): every feature set's gain, against the exact ceiling,
at each signal, on fresh worlds.

For each world seed the web side of the world is the same at every signal (the signal only changes what
people do after a visit: tests/test_sim.py checks the visits are identical), so per seed the pipeline runs
once on the signal-0 world: ingest, sessionize, cut, split, the encoder trained on the learning visits, the
random encoder (same vocabulary, no training), CoLES (pytorch-lifestream in its own venv, the same training
seconds as the encoder; `--coles`), the taxonomy, the LLM labels (a sample of the learning visits for the
distiller, a sample of the evaluation visits for the comparisons), the distiller and its labels. Then every
signal's world is evaluated with those features (`clickintent evaluate`, two at a time). World seeds are
the outer replicates: the curve's CI is a t-interval over seeds of the per-seed gains.

    python -m benchmarks.bench_evidence --seeds 11 12 13 --out benchmarks/results/evidence.json
    python -m benchmarks.bench_evidence --seeds 101 --signals 0 0.5 --no-llm --out /tmp/evidence-dev.json

Simulated data throughout; development seeds (101-103) are never the reported ones.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from clickintent.sim import simulate

SIGNALS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _cli(args: list[str], log: Path) -> float:
    """One clickintent command in a subprocess (its output to `log`); fails loudly."""
    t0 = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n$ clickintent {shlex.join(args)}\n")
        out.flush()
        code = subprocess.call([sys.executable, "-m", "clickintent", *args], stdout=out, stderr=subprocess.STDOUT)
    if code:
        raise SystemExit(f"failed ({code}): clickintent {shlex.join(args)}; see {log}")
    return time.perf_counter() - t0


def prepare(seed: int, args: argparse.Namespace, work: Path, log: Path) -> dict[str, Any]:
    """Worlds at every signal, and the signal-independent pipeline on the signal-0 world."""
    times: dict[str, float] = {}
    for signal in args.signals:
        sim = work / f"signal-{signal:g}" / "sim"
        if not (sim / "truth" / "manifest.json").exists():
            t0 = time.perf_counter()
            simulate(sim, visitors=args.visitors, days=args.days, seed=seed, signal=signal)
            times[f"simulate {signal:g}"] = time.perf_counter() - t0
    sim0, data, split = work / f"signal-{args.signals[0]:g}" / "sim", work / "data", work / "split"
    visits, learn, evaluation = data / "visits.parquet", split / "learn-visits.parquet", split / "eval-visits.parquet"
    steps: list[tuple[str, list[str], Path]] = [
        ("ingest", ["ingest", str(sim0 / "events.parquet"), "--out", str(data)], data / "events.parquet"),
        ("sessionize", ["sessionize", str(data / "events.parquet")], data / "sessions.parquet"),
        ("cut", ["cut", str(data / "sessions.parquet"), "--out", str(visits)], visits),
        ("split", ["split", str(visits), "--sim", str(sim0), "--out", str(split)], learn),
        ("train", ["train", str(learn), "--out", str(work / "bundle"), "--max-minutes", str(args.train_minutes),
                   "--seed", str(seed)], work / "bundle" / "encoder.safetensors"),
        ("embed", ["embed", str(visits), "--bundle", str(work / "bundle"), "--out", str(data / "embeddings.parquet")],
         data / "embeddings.parquet"),
        ("random encoder", ["train", str(learn), "--out", str(work / "bundle-random"), "--epochs", "0", "--seed",
                            str(seed)], work / "bundle-random" / "encoder.safetensors"),
        ("embed random", ["embed", str(visits), "--bundle", str(work / "bundle-random"), "--out",
                          str(data / "embeddings-random.parquet")], data / "embeddings-random.parquet"),
    ]  # fmt: skip
    if args.llm:
        llm = ["--llm-cache", str(work / "llm-cache.sqlite"), "--llm-threads", "1"]
        tax, labels, compare = work / "taxonomy.json", work / "labels-llm.parquet", work / "labels-llm-compare.parquet"
        steps += [
            ("taxonomy build", ["taxonomy", "build", str(learn), "--out", str(tax), "--vectors", "text", "--clusterer",
                                "kmeans", "--platform", "web", "--seed", str(seed), "--max-labels",
                                str(args.max_labels), *llm], tax),
            ("taxonomy label", ["taxonomy", "label", str(learn), "--taxonomy", str(tax), "--out", str(labels),
                                "--sample", str(args.label_sample), "--seed", str(seed), "--platform", "web", *llm],
             labels),
            ("taxonomy label compare", ["taxonomy", "label", str(evaluation), "--taxonomy", str(tax), "--out",
                                        str(compare), "--sample", str(args.compare_sample), "--seed", str(seed),
                                        "--platform", "web", "--examples-from", str(learn), *llm], compare),
            ("distill", ["distill", "--embeddings", str(data / "embeddings.parquet"), "--labels", str(labels),
                         "--taxonomy", str(tax), "--sessions", str(visits), "--bundle", str(work / "bundle"),
                         "--sim", str(sim0), "--report", str(work / "distill.json"), "--seed", str(seed)],
             work / "distill.json"),
            ("label", ["label", str(visits), "--bundle", str(work / "bundle"), "--embeddings",
                       str(data / "embeddings.parquet"), "--out", str(work / "labels-distilled.parquet")],
             work / "labels-distilled.parquet"),
        ]  # fmt: skip
    for name, cmd, output in steps:
        if not output.exists():
            times[name] = _cli(cmd, log)
    if args.coles and not (data / "embeddings-coles.parquet").exists():
        times["coles"] = coles(work, learn, visits, seed, times.get("train", 180.0))
    return {"times": {k: round(v, 1) for k, v in times.items()}}


def coles(work: Path, learn: Path, visits: Path, seed: int, budget: float) -> float:
    """CoLES (pytorch-lifestream) trained on the learning visits for `budget` seconds, every web visit
    embedded; written as data/embeddings-coles.parquet."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
    from coles_lifestream import REQUIREMENTS, coles_features
    from peer_common import ensure_venv, run_worker

    from clickintent.encoder.embed import embeddings_table

    t0 = time.perf_counter()
    python, _ = ensure_venv("lifestream", REQUIREMENTS)
    table = pq.read_table(visits)
    web = table.filter(pc.equal(table.column("platform"), "web"))
    train_feat, meta = coles_features(pq.read_table(learn))
    all_feat, _ = coles_features(web, meta["vocabs"])
    npz = {f"learn_{k}": v for k, v in train_feat.items()} | {f"all_{k}": v for k, v in all_feat.items()}
    np.savez(work / "coles_input.npz", **npz, **meta["sizes"])
    run_worker(python, "_coles_worker.py", ["--data", str(work / "coles_input.npz"), "--out", str(work / "coles"),
                                             "--sets", "learn", "all", "--budget-seconds", str(round(budget)),
                                             "--seed", str(seed)], cwd=work / "coles")  # fmt: skip
    z = np.load(work / "coles" / "emb_all.npy")
    pq.write_table(embeddings_table(web.column("session_id"), z, f"coles-s{seed}"),
                   work / "data" / "embeddings-coles.parquet")  # fmt: skip
    return time.perf_counter() - t0


def evaluate_signals(work: Path, args: argparse.Namespace, log: Path) -> dict[float, Path]:
    """`clickintent evaluate` of every signal's world with the seed's features, `--jobs` at a time."""
    data = work / "data"
    out, running = {}, []
    for signal in args.signals:
        target = work / f"signal-{signal:g}" / "evaluation.json"
        out[signal] = target
        if target.exists():
            continue
        cmd = ["evaluate", str(data / "visits.parquet"), "--split", str(work / "split"), "--sim",
               str(work / f"signal-{signal:g}" / "sim"), "--embeddings", str(data / "embeddings.parquet"),
               "--reference", f"random encoder={data / 'embeddings-random.parquet'}", "--bootstrap",
               str(args.bootstrap), "--out", str(target)]  # fmt: skip
        if (data / "embeddings-coles.parquet").exists():
            cmd += ["--reference", f"coles={data / 'embeddings-coles.parquet'}"]
        if (work / "labels-distilled.parquet").exists():
            cmd += ["--distilled-labels", str(work / "labels-distilled.parquet"), "--llm-labels",
                    str(work / "labels-llm-compare.parquet"), "--taxonomy", str(work / "taxonomy.json")]  # fmt: skip
        f = (work / f"evaluate-{signal:g}.log").open("w")
        env = os.environ | {"OMP_NUM_THREADS": "1"}
        running.append((subprocess.Popen([sys.executable, "-m", "clickintent", *cmd], stdout=f,
                                         stderr=subprocess.STDOUT, env=env), f, cmd))  # fmt: skip
        while len(running) >= args.jobs:
            running = _reap(running)
    while running:
        running = _reap(running)
    return out


def _reap(running: list[Any]) -> list[Any]:
    time.sleep(2)
    keep = []
    for proc, f, cmd in running:
        if proc.poll() is None:
            keep.append((proc, f, cmd))
            continue
        f.close()
        if proc.returncode:
            raise SystemExit(f"failed ({proc.returncode}): clickintent {shlex.join(cmd)}; see {f.name}")
    return keep


def t_interval(values: list[float]) -> dict[str, Any]:
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], float)
    if len(x) == 0:
        return {"mean": None, "ci": [None, None], "per_seed": values}
    m = float(x.mean())
    if len(x) < 2:
        return {"mean": m, "ci": [m, m], "per_seed": values}
    from scipy import stats

    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return {"mean": m, "ci": [m - half, m + half], "per_seed": values}


def curve(runs: dict[int, dict[float, dict[str, Any]]], signals: list[float]) -> list[dict[str, Any]]:
    """{signal, task, feature_set, log_loss_gain, ceiling_share} each {mean, ci} over the world seeds."""
    rows = []
    for signal in signals:
        evals = [runs[seed][signal] for seed in runs]
        for task in ("tile ranking", "conversion"):
            for part_name in ("", "labelled"):
                parts = [e["tasks"][task] if not part_name else e["tasks"][task].get("labelled") for e in evals
                         if task in e["tasks"]]  # fmt: skip
                parts = [p for p in parts if p]
                if not parts:
                    continue
                names = list(parts[0]["feature_sets"])
                rows.append({"signal": signal, "task": task + (" (labelled visits)" if part_name else ""),
                             "feature_set": "exact ceiling", "log_loss_gain": t_interval(
                                 [p.get("ceiling", {}).get("log_loss_gain", {}).get("mean") for p in parts]),
                             "ceiling_share": t_interval([1.0] * len(parts))})  # fmt: skip
                for name in names[1:]:
                    fs = [p["feature_sets"][name] for p in parts if name in p["feature_sets"]]
                    rows.append({"signal": signal, "task": task + (" (labelled visits)" if part_name else ""),
                                 "feature_set": name,
                                 "log_loss_gain": t_interval([f["log_loss_gain"]["mean"] for f in fs]),
                                 "ceiling_share": t_interval([(f.get("ceiling_share") or {}).get("mean") for f in fs]),
                                 "resolved_per_seed": [f.get("resolved") for f in fs]})  # fmt: skip
    return rows


def comparisons(runs: dict[int, dict[float, dict[str, Any]]], signals: list[float]) -> list[dict[str, Any]]:
    out = []
    for signal in signals:
        by_key: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for seed in runs:
            for c in runs[seed][signal].get("comparisons", []):
                by_key.setdefault((c["task"], c["a"], c["b"]), []).append(c)
        for (task, a, b), cs in by_key.items():
            row = {"signal": signal, "task": task, "a": a, "b": b, "metric": "log_loss_gain",
                   "diff": t_interval([c["diff"]["mean"] for c in cs]), "per_seed_ci": [c["diff"]["ci"] for c in cs],
                   "sessions": [c["sessions"] for c in cs]}  # fmt: skip
            if cs[0].get("gain_kept"):
                row["gain_kept"] = t_interval([c["gain_kept"]["mean"] for c in cs])
                row["gain_kept_per_seed_ci"] = [c["gain_kept"]["ci"] for c in cs]
            if cs[0].get("agreement") is not None:
                row["agreement"] = t_interval([c["agreement"] for c in cs])
            out.append(row)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", required=True, help="World seeds (the outer replicates).")
    p.add_argument("--signals", type=float, nargs="+", default=list(SIGNALS))
    p.add_argument("--visitors", type=int, default=40_000, help="People per world (docs/EVALUATION.md, power).")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--train-minutes", type=float, default=3.0)
    p.add_argument("--label-sample", type=int, default=300, help="LLM labels of learning visits (the distiller).")
    p.add_argument("--compare-sample", type=int, default=600, help="LLM labels of evaluation visits (comparisons).")
    p.add_argument("--max-labels", type=int, default=12)
    p.add_argument("--bootstrap", type=int, default=500)
    p.add_argument("--jobs", type=int, default=2, help="Evaluations run at once.")
    p.add_argument("--no-llm", dest="llm", action="store_false", help="Skip the taxonomy, LLM and distilled labels.")
    p.add_argument("--coles", action="store_true", help="Add CoLES (builds benchmarks/peers/.venvs/lifestream).")
    p.add_argument("--work", type=Path, default=Path("bench-out/evidence"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/evidence.json"))
    args = p.parse_args()
    started = time.perf_counter()
    runs: dict[int, dict[float, dict[str, Any]]] = {}
    times: dict[int, dict[str, Any]] = {}
    for seed in args.seeds:
        work = args.work / f"seed-{seed}"
        work.mkdir(parents=True, exist_ok=True)
        log = work / "pipeline.log"
        print(f"[evidence] seed {seed}: preparing ({work})", flush=True)
        times[seed] = prepare(seed, args, work, log)
        t0 = time.perf_counter()
        paths = evaluate_signals(work, args, log)
        times[seed]["times"]["evaluate (all signals)"] = round(time.perf_counter() - t0, 1)
        runs[seed] = {s: json.loads(path.read_text()) for s, path in paths.items()}
        print(f"[evidence] seed {seed}: {times[seed]['times']}", flush=True)
    result = {
        "simulated": True, "command": " ".join(["python -m benchmarks.bench_evidence", *sys.argv[1:]]),
        "seeds": args.seeds, "signals": args.signals, "visitors": args.visitors, "days": args.days,
        "wall_seconds": round(time.perf_counter() - started, 1), "loadavg_at_end": os.getloadavg(),
        "times": times, "curve": curve(runs, args.signals), "comparisons": comparisons(runs, args.signals),
        "runs": {str(seed): {f"{s:g}": {"tasks": r["tasks"], "comparisons": r["comparisons"]} for s, r in rs.items()}
                 for seed, rs in runs.items()},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for row in result["curve"]:
        g, sh = row["log_loss_gain"], row["ceiling_share"]
        if g["mean"] is None:
            continue
        share = "" if sh["mean"] is None else f"  share {sh['mean']:6.0%} [{sh['ci'][0]:.0%}, {sh['ci'][1]:.0%}]"
        print(f"signal {row['signal']:<4g} {row['task']:<30} {row['feature_set']:<26} gain {g['mean']:+.4f} "
              f"[{g['ci'][0]:+.4f}, {g['ci'][1]:+.4f}]{share}")  # fmt: skip
    print(f"wrote {args.out} in {result['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
