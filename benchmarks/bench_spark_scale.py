"""The whole batch path on PySpark at volume: ingest, sessionize, embed and label about a million sessions.

Steps, each timed:
1. `simulate` a world (`--visitors` x `--days`; 137,000 x 30 gives about a million sessions), reused when the
   same world is already in `--dir`.
2. The in-process reference: DuckDB `ingest` and `sessionize` of the same raw events.
3. A bundle: an encoder trained in this process on a random sample of the reference sessions (`--train-sessions`,
   `--epochs`; hashing text vectors by default, so nothing is downloaded) and the distilled classifier fitted on
   the simulator's true intents of those sessions; or `--bundle DIR` (encoder + classifier) as it is.
4. On Spark (`--master`, default local[2]), in a child process: `ingest_spark`, `sessionize_spark`, `embed_spark`,
   `label_spark`, each written to Parquet. This process samples the resident memory of the child's whole process
   tree (driver Python, the JVM that is driver and executor in local mode, the Python workers) every second, so
   each stage gets its peak: RSS summed over processes, and PSS (forked workers share pages) beside it.
5. Spark against the in-process path: the ingest counts; the full set of session ids; the rows of `--sample`
   random sessions; and for those sessions `embed_file` and `label_file` (max |difference| of the embeddings
   and confidences, labels equal).

Results go to `--results` (default benchmarks/results/spark_scale.json).

    .venv/bin/python benchmarks/bench_spark_scale.py --visitors 137000 --days 30 --dir /tmp/ci-spark-scale
    .venv/bin/python benchmarks/bench_spark_scale.py --visitors 3000 --days 30   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = REPO / "benchmarks" / "results" / "spark_scale.json"
TOLERANCE = 1e-5


# --- memory of a process tree, from /proc -----------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(name))
    return out


def process_tree(root: int) -> list[int]:
    children, out, todo = _children_map(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _kib(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "driver_python"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "other"
    exe = os.path.basename(argv[0].decode(errors="replace")) if argv and argv[0] else ""
    if exe == "java":
        return "jvm"
    if "python" in exe:
        return "python_workers"  # pyspark.daemon and the workers it forks
    return "other"


class MemorySampler:
    """Samples RSS and PSS (MiB) of a process tree every `interval` seconds, in a thread."""

    def __init__(self, root: int, interval: float = 1.0) -> None:
        self.root, self.interval = root, interval
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> dict[str, Any]:
        rss: dict[str, float] = {}
        pss: dict[str, float] = {}
        n = 0
        for pid in process_tree(self.root):
            r = _kib(f"/proc/{pid}/status", "VmRSS:")
            if not r:
                continue
            role = _role(pid, self.root)
            rss[role] = rss.get(role, 0.0) + r / 1024
            pss[role] = pss.get(role, 0.0) + _kib(f"/proc/{pid}/smaps_rollup", "Pss:") / 1024
            n += 1
        return {
            "t": time.time(),
            "processes": n,
            "rss": rss,
            "pss": pss,
            "rss_total": sum(rss.values()),
            "pss_total": sum(pss.values()),
        }

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.sample())
            self._stop.wait(self.interval)

    def peak(self, start: float = 0.0, end: float = float("inf")) -> dict[str, Any]:
        window = [s for s in self.samples if start <= s["t"] <= end]
        if not window:
            return {}
        top = max(window, key=lambda s: s["rss_total"])
        roles = sorted({r for s in window for r in s["rss"]})
        return {
            "samples": len(window),
            "rss_total_mib": round(top["rss_total"]),
            "pss_total_mib": round(max(s["pss_total"] for s in window)),
            "rss_at_peak_mib": {r: round(v) for r, v in sorted(top["rss"].items())},
            "rss_peak_by_role_mib": {r: round(max(s["rss"].get(r, 0.0) for s in window)) for r in roles},
            "max_processes": max(s["processes"] for s in window),
        }


# --- the Spark child -----------------------------------------------------------------------------------


def spark_child(cfg: dict[str, Any]) -> dict[str, Any]:
    """Runs in its own process: the four stages on Spark; returns wall times and counts per stage."""
    from clickintent.engines.spark import get_spark, ingest_spark, sessionize_spark
    from clickintent.engines.spark_bundle import embed_spark, label_spark

    out = Path(cfg["spark_dir"])
    conf = {
        "spark.driver.memory": cfg["driver_memory"],
        "spark.sql.shuffle.partitions": str(cfg["shuffle_partitions"]),
        "spark.ui.showConsoleProgress": "false",
    }
    stages: dict[str, dict[str, Any]] = {}
    t = time.time()
    spark = get_spark(cfg["master"], app_name="clickintent-bench-spark-scale", **conf)
    spark.sparkContext.setLogLevel("ERROR")
    stages["start_spark"] = {"start": t, "end": time.time()}

    t = time.time()
    ing = ingest_spark(spark, cfg["raw"], out / "ingest")
    stages["ingest"] = {
        "start": t,
        "end": time.time(),
        "rows_in": ing.rows_in,
        "rows_out": ing.rows_out,
        "quarantined": ing.quarantined,
        "duplicates": ing.duplicates,
        "quarantine_reasons": ing.quarantine_reasons,
        "redactions": ing.redactions,
    }

    t = time.time()
    ses = sessionize_spark(spark, out / "ingest" / "events.parquet", out / "sessions.parquet")
    stages["sessionize"] = {
        "start": t,
        "end": time.time(),
        "events": ses.events,
        "sessions": ses.sessions,
        "linked_sessions": ses.linked_sessions,
    }

    model_args = {"batch_size": cfg["batch_size"], "text_cache": cfg["text_cache"]}
    t = time.time()
    embed_spark(spark, out / "sessions.parquet", cfg["bundle"], out / "embeddings.parquet", **model_args)
    end = time.time()
    n_emb = spark.read.parquet(str(out / "embeddings.parquet")).count()
    stages["embed"] = {"start": t, "end": end, "sessions": n_emb}

    t = time.time()
    label_spark(spark, out / "sessions.parquet", cfg["bundle"], out / "labels.parquet", **model_args)
    end = time.time()
    labels = spark.read.parquet(str(out / "labels.parquet"))
    counts = {r["intent"]: int(r["count"]) for r in labels.groupBy("intent").count().collect()}
    stages["label"] = {
        "start": t,
        "end": end,
        "sessions": sum(counts.values()),
        "intents": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
    }
    spark_version = spark.version
    spark.stop()
    return {"stages": stages, "spark_version": spark_version}


# --- the parent: world, reference, bundle, Spark child, comparison ----------------------------------


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def simulate_world(args: argparse.Namespace) -> dict[str, Any]:
    from clickintent.sim import simulate

    sim = args.dir / "sim"
    stamp = sim / "bench_params.json"
    params = {"visitors": args.visitors, "days": args.days, "seed": args.seed}
    if stamp.exists() and json.loads(stamp.read_text()).get("params") == params:
        log(f"reusing the simulated world in {sim}")
        return dict(json.loads(stamp.read_text())["summary"])
    t = time.perf_counter()
    summary = simulate(sim, visitors=args.visitors, days=args.days, seed=args.seed)
    seconds = time.perf_counter() - t
    info = {
        "events": summary.events,
        "web_sessions": summary.web_sessions,
        "app_sessions": summary.app_sessions,
        "bot_sessions": summary.bot_sessions,
        "seconds": round(seconds, 1),
    }
    stamp.write_text(json.dumps({"params": params, "summary": info}))
    log(f"simulated {summary.events:,} events in {seconds:.0f} s")
    return info


def reference_path(args: argparse.Namespace) -> dict[str, Any]:
    from clickintent.ingest import ingest
    from clickintent.sessionize import sessionize

    ref = args.dir / "ref"
    t = time.perf_counter()
    ing = ingest(args.dir / "sim" / "events.parquet", ref)
    t_ing = time.perf_counter() - t
    t = time.perf_counter()
    ses = sessionize(ref / "events.parquet", ref / "sessions.parquet")
    t_ses = time.perf_counter() - t
    log(f"in-process: ingest {ing.rows_in:,} rows in {t_ing:.0f} s, sessionize -> {ses.sessions:,} in {t_ses:.0f} s")
    return {
        "ingest": {
            "seconds": round(t_ing, 1),
            "rows_in": ing.rows_in,
            "rows_out": ing.rows_out,
            "quarantined": ing.quarantined,
            "duplicates": ing.duplicates,
            "quarantine_reasons": ing.quarantine_reasons,
            "redactions": ing.redactions,
        },
        "sessionize": {
            "seconds": round(t_ses, 1),
            "events": ses.events,
            "sessions": ses.sessions,
            "linked_sessions": ses.linked_sessions,
        },
    }


def read_ids(path: Path, ids: list[str]) -> Any:
    """Rows of a Parquet file or Spark directory whose session_id is in `ids` (a filtered scan)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    dataset = ds.dataset(str(path), format="parquet")
    return dataset.to_table(filter=ds.field("session_id").isin(pa.array(ids, pa.string())))


def build_bundle(args: argparse.Namespace, train_ids: list[str]) -> tuple[Path, dict[str, Any]]:
    import numpy as np

    from clickintent.distill import IntentClassifier
    from clickintent.encoder.embed import Embedder
    from clickintent.encoder.text import HashingEncoder, MiniLMEncoder, TextVectors
    from clickintent.encoder.train import TrainConfig, train
    from clickintent.serve.toy import DEFAULT_CONFIG
    from clickintent.sim.join import true_intents
    from clickintent.taxonomy.taxonomy import Label, Taxonomy

    bundle = args.dir / "bundle"
    t = time.perf_counter()
    table = read_ids(args.dir / "ref" / "sessions.parquet", train_ids)
    encoder = HashingEncoder() if args.text_model == "hashing" else MiniLMEncoder()
    text = TextVectors(encoder, args.dir / "textcache")
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=128, warmup_steps=20, patience=args.epochs, seed=args.seed, device="cpu"
    )
    result = train(table, bundle, DEFAULT_CONFIG, cfg, text=text, progress=False, resume=False)
    t_train = time.perf_counter() - t

    t = time.perf_counter()
    truth = true_intents(table, args.dir / "sim")
    labels = [
        Label(name, name.replace("_", " ").capitalize(), f"True simulated intent {name}.", "simulated")
        for name in sorted(set(truth.values()))
    ]
    tax = Taxonomy.create(labels, mode="manual", generator={"source": "benchmarks/bench_spark_scale.py"})
    slug = {name: lb.id for name, lb in zip(sorted(set(truth.values())), labels, strict=True)}
    ids = table.column("session_id").to_pylist()
    rows = [i for i, s in enumerate(ids) if s in truth]
    embedder = Embedder.from_bundle(result.bundle, device="cpu", text_cache=args.dir / "textcache")
    X = embedder.embed_sessions(table.take(rows))
    y = [slug[truth[ids[i]]] for i in rows]
    cut = int(len(y) * 0.8)
    clf = IntentClassifier(C=1.0).fit(X[:cut], y[:cut], X[cut:], y[cut:])
    acc = float(np.mean(np.array(clf.predict(X[cut:])[0]) == np.array(y[cut:])))
    clf.save(result.bundle, json.dumps(tax.to_dict(), indent=2).encode(), {"train_rows": cut, "val_accuracy": acc})
    t_clf = time.perf_counter() - t
    log(
        f"bundle: encoder on {len(table):,} sessions in {t_train:.0f} s, classifier on {len(rows):,} "
        f"({len(slug)} true intents, held-out accuracy {acc:.3f}) in {t_clf:.0f} s"
    )
    return Path(result.bundle), {
        "how": "trained in this process on a random sample of the reference sessions; classifier on true intents",
        "encoder_config": "serve.toy.DEFAULT_CONFIG (d_model 64, 2 layers, out_dim 64)",
        "text_model": text.name,
        "train_sessions": len(table),
        "epochs": args.epochs,
        "train_seconds": round(t_train, 1),
        "classifier_rows": len(rows),
        "classes": len(slug),
        "classifier_val_accuracy_vs_truth": round(acc, 4),
        "classifier_seconds": round(t_clf, 1),
    }


def run_spark(args: argparse.Namespace, bundle: Path) -> tuple[dict[str, Any], MemorySampler, float]:
    cfg = {
        "spark_dir": str(args.dir / "spark"),
        "raw": str(args.dir / "sim" / "events.parquet"),
        "bundle": str(bundle),
        "master": args.master,
        "driver_memory": args.driver_memory,
        "shuffle_partitions": args.shuffle_partitions,
        "batch_size": args.batch_size,
        "text_cache": str(args.dir / "textcache"),
    }
    result_file = args.dir / "spark_child.json"
    result_file.unlink(missing_ok=True)
    env = os.environ | {"OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(cfg), "--child-out", str(result_file)]
    log_path = args.dir / "spark_child.log"
    t = time.perf_counter()
    with open(log_path, "w") as child_log:
        proc = subprocess.Popen(cmd, stdout=child_log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        with MemorySampler(proc.pid, args.interval) as sampler:
            rc = proc.wait()
    wall = time.perf_counter() - t
    if rc != 0 or not result_file.exists():
        sys.exit(f"the Spark child failed (exit {rc}); see {log_path}:\n" + log_path.read_text()[-4000:])
    return json.loads(result_file.read_text()), sampler, wall


def compare(
    args: argparse.Namespace, bundle: Path, ref: dict[str, Any], spark: dict[str, Any], sample_ids: list[str]
) -> dict[str, Any]:
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from clickintent import schema
    from clickintent.distill.label import label_file
    from clickintent.encoder.embed import embed_file

    out: dict[str, Any] = {}
    ingest_keys = ("rows_in", "rows_out", "quarantined", "duplicates", "quarantine_reasons", "redactions")
    out["ingest_counts_equal"] = all(ref["ingest"][k] == spark["ingest"][k] for k in ingest_keys)
    session_keys = ("events", "sessions", "linked_sessions")
    out["sessionize_counts_equal"] = all(ref["sessionize"][k] == spark["sessionize"][k] for k in session_keys)

    spark_dir = args.dir / "spark"
    a = pq.read_table(args.dir / "ref" / "sessions.parquet", columns=["session_id"]).column(0)
    b = ds.dataset(str(spark_dir / "sessions.parquet")).to_table(columns=["session_id"]).column(0)
    a, b = (ids.take(pc.sort_indices(ids)).combine_chunks().cast("string") for ids in (a, b))
    out["all_session_ids_equal"] = bool(a.equals(b))
    del a, b

    t = time.perf_counter()
    ref_rows = read_ids(args.dir / "ref" / "sessions.parquet", sample_ids).cast(schema.SESSIONS).sort_by("session_id")
    spark_rows = read_ids(spark_dir / "sessions.parquet", sample_ids).select(schema.SESSIONS.names)
    spark_rows = spark_rows.cast(schema.SESSIONS).sort_by("session_id")
    out["sample_sessions"] = ref_rows.num_rows
    out["sample_session_rows_equal"] = bool(ref_rows.equals(spark_rows))
    sample = args.dir / "sample_sessions.parquet"
    pq.write_table(ref_rows, sample)

    t_e = time.perf_counter()
    emb = embed_file(
        sample,
        bundle,
        args.dir / "sample_embeddings.parquet",
        device="cpu",
        batch_size=args.batch_size,
        text_cache=args.dir / "textcache",
    )
    t_e = time.perf_counter() - t_e
    t_l = time.perf_counter()
    label_file(sample, bundle, args.dir / "sample_labels.parquet", device="cpu", text_cache=args.dir / "textcache")
    t_l = time.perf_counter() - t_l

    def by_id(table: Any, column: str) -> dict[str, Any]:
        return dict(zip(table.column("session_id").to_pylist(), table.column(column).to_pylist(), strict=True))

    ref_emb = pq.read_table(args.dir / "sample_embeddings.parquet")
    spark_emb = read_ids(spark_dir / "embeddings.parquet", sample_ids)
    ra, sa = by_id(ref_emb, "embedding"), by_id(spark_emb, "embedding")
    out["sample_embedding_ids_equal"] = ra.keys() == sa.keys()
    ids = sorted(ra)
    diff = np.abs(np.array([ra[s] for s in ids], np.float32) - np.array([sa.get(s) for s in ids], np.float32))
    out["sample_embedding_max_abs_diff"] = float(diff.max())
    out["sample_model_version_equal"] = set(ref_emb.column("model_version").to_pylist()) == set(
        spark_emb.column("model_version").to_pylist()
    )

    ref_lab = pq.read_table(args.dir / "sample_labels.parquet")
    spark_lab = read_ids(spark_dir / "labels.parquet", sample_ids)
    ri, si = by_id(ref_lab, "intent"), by_id(spark_lab, "intent")
    rc, sc = by_id(ref_lab, "confidence"), by_id(spark_lab, "confidence")
    out["sample_label_ids_equal"] = ri.keys() == si.keys()
    out["sample_labels_equal"] = sum(ri[s] == si.get(s) for s in ri)
    out["sample_labels_different"] = sum(ri[s] != si.get(s) for s in ri)
    out["sample_confidence_max_abs_diff"] = float(max(abs(rc[s] - sc[s]) for s in rc))
    out["in_process_sample_embed_sessions_per_s"] = round(emb.sessions / t_e)
    out["in_process_sample_label_sessions_per_s"] = round(len(ri) / t_l)
    out["seconds"] = round(time.perf_counter() - t, 1)
    out["all_equal"] = bool(
        out["ingest_counts_equal"]
        and out["sessionize_counts_equal"]
        and out["all_session_ids_equal"]
        and out["sample_session_rows_equal"]
        and out["sample_embedding_ids_equal"]
        and out["sample_embedding_max_abs_diff"] < TOLERANCE
        and out["sample_model_version_equal"]
        and out["sample_label_ids_equal"]
        and out["sample_labels_different"] == 0
        and out["sample_confidence_max_abs_diff"] < TOLERANCE
    )
    return out


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--visitors",
        type=int,
        default=137_000,
        help="simulated visitors (about 7.3 sessions each at 30 days: 137,000 x 30 days is ~1M sessions)",
    )
    parser.add_argument("--days", type=int, default=30, help="simulated days")
    parser.add_argument("--seed", type=int, default=0, help="world, sample and training seed")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/clickintent-spark-scale"), help="working directory")
    parser.add_argument("--master", default="local[2]", help="Spark master URL")
    parser.add_argument("--driver-memory", default="4g", help="spark.driver.memory (driver = executor in local mode)")
    parser.add_argument("--shuffle-partitions", type=int, default=8, help="spark.sql.shuffle.partitions")
    parser.add_argument("--batch-size", type=int, default=512, help="sessions per encoder forward pass")
    parser.add_argument("--sample", type=int, default=2_000, help="sessions compared row by row with in-process")
    parser.add_argument("--train-sessions", type=int, default=20_000, help="sessions the bundle's encoder sees")
    parser.add_argument("--epochs", type=int, default=1, help="encoder training epochs")
    parser.add_argument(
        "--text-model",
        choices=["hashing", "minilm"],
        default="hashing",
        help="text vectors of the trained bundle (hashing: offline and fast)",
    )
    parser.add_argument("--bundle", type=Path, default=None, help="use this bundle (encoder + classifier) instead")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between memory samples")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSON file to write")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.child_out.write_text(json.dumps(spark_child(json.loads(args.child))))
        return

    import numpy as np
    import pyarrow.parquet as pq

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.dir.mkdir(parents=True, exist_ok=True)
    started, load_before = time.perf_counter(), _load()
    log(f"load average {load_before}; working in {args.dir}")
    world = simulate_world(args)
    ref = reference_path(args)

    ids = pq.read_table(args.dir / "ref" / "sessions.parquet", columns=["session_id"]).column(0).to_pylist()
    rng = np.random.default_rng(args.seed)
    pick = rng.permutation(len(ids))
    sample_ids = [ids[i] for i in pick[: args.sample]]
    train_ids = [ids[i] for i in pick[args.sample : args.sample + args.train_sessions]]
    del ids
    if args.bundle is not None:
        bundle, bundle_info = args.bundle, {"how": f"given: {args.bundle}"}
    else:
        bundle, bundle_info = build_bundle(args, train_ids)

    log(f"Spark ({args.master}) in a child process; load average {_load()}")
    child, sampler, spark_wall = run_spark(args, bundle)
    stages = child["stages"]
    log(f"Spark done in {spark_wall:.0f} s; load average {_load()}")

    units = {
        "ingest": ("rows_in", "events"),
        "sessionize": ("events", "events"),
        "embed": ("sessions", "sessions"),
        "label": ("sessions", "sessions"),
    }
    table = {}
    for name, st in stages.items():
        seconds = st["end"] - st["start"]
        row = {"seconds": round(seconds, 1), "peak_memory": sampler.peak(st["start"], st["end"])}
        if name in units:
            key, unit = units[name]
            row[f"{unit}_per_s"] = round(st[key] / seconds)
        if name == "sessionize":
            row["sessions_per_s"] = round(st["sessions"] / seconds)
        table[name] = row | {k: v for k, v in st.items() if k not in ("start", "end")}
        log(f"  {name:10s} {seconds:7.1f} s  peak RSS {row['peak_memory'].get('rss_total_mib', 0):,} MiB")

    log("comparing with the in-process path")
    checks = compare(args, bundle, ref, stages, sample_ids)
    result = {
        "benchmark": "benchmarks/bench_spark_scale.py",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "spark": child["spark_version"],
            "load_average_before": load_before,
            "load_average_after": _load(),
        },
        "config": {k: str(v) for k, v in vars(args).items() if not k.startswith("child")},
        "world": world | {"visitors": args.visitors, "days": args.days, "seed": args.seed},
        "bundle": bundle_info,
        "in_process_reference": ref,
        "spark": {
            "master": args.master,
            "wall_s_child_process": round(spark_wall, 1),
            "stages": table,
            "peak_memory_whole_run": sampler.peak(),
        },
        "equal_to_in_process": checks,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    log(f"equal to the in-process path: {checks['all_equal']} ({json.dumps(checks)})")
    log(f"wrote {args.results}")


if __name__ == "__main__":
    main()
