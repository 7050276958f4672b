"""Seconds per label with the local Gemma backend: one decode per choice (the old path) vs one batch.

The requests are what `clickintent taxonomy label` sends: `clickintent.sim.simulate` -> ingest -> sessionize
-> the simulator's truth joined on; a taxonomy of the `--labels` most common true intents (named after them,
described with the simulator's one-line descriptions, plus Other), one example visit per label (the label
prompt's examples block); then `label_request` for `--sessions` other rendered sessions, after the
content-free calibration request that `label_sessions` sends first.

`LocalBackend`s in one process take the same requests in turn (the order alternates per session), so all
see the same machine load:
- old: the settings before the batch path: one llama.cpp decode per choice, repacked weights (llama.cpp's
  default), n_batch 256;
- new: the defaults: every choice in one batch over a token trie, no repacking, n_batch 512;
- `--sequential`: the new settings but one decode per choice (what batching alone changes);
- `--flash-attn`: the new settings with flash attention;
- `--repack`: the new path with the old, repacked weights;
- `--noise-floor`: the old settings again, fed the sessions in another (seeded random) order: how much the
  old path's answers depend on what the previous request left in the cache (not timed against the others).
The calibration request, which evaluates the whole shared prefix (labels and examples, the same for every
session), is timed separately: each later request evaluates only its visit and `### Label:`.

Printed: per-request seconds (median, mean) per backend, the speed-up (ratio of medians, and the median of
the per-session ratios), prompt tokens evaluated, and how the answers compare with the old path (and with
`--sequential`'s): the top choice, the calibrated label as `label_sessions` decides it, and the largest
score difference.

    python benchmarks/bench_llm_label.py --sessions 30 --out /tmp/bench-llm-label.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

os.environ.setdefault("HF_HUB_OFFLINE", "1")

OLD = {"batch_choices": False, "repack": True, "n_batch": 256}
NEW: dict[str, Any] = {}
SEQUENTIAL = {"batch_choices": False}
FLASH = {"flash_attn": True}
REPACK = {"repack": True}
SHUFFLED = "old-shuffled"


def build_requests(
    work: Path, visitors: int, days: int, seed: int, n_labels: int, n_sessions: int
) -> tuple[Any, list[Any], dict[str, Any]]:
    """(calibration request, label requests, info) for a simulated world."""
    from clickintent.ingest import ingest
    from clickintent.sessionize import sessionize
    from clickintent.sim import simulate
    from clickintent.sim.intents import INTENTS
    from clickintent.sim.join import true_intents
    from clickintent.taxonomy.label import CONTENT_FREE, LabelVisits, label_request
    from clickintent.taxonomy.render import render_pages, site_suffix
    from clickintent.taxonomy.taxonomy import Label, Taxonomy

    simulate(work / "sim", visitors=visitors, days=days, seed=seed)
    ingest(work / "sim" / "events.parquet", work / "ingest")
    sessionize(work / "ingest" / "events.parquet", work / "sessions.parquet")
    sessions = pq.read_table(work / "sessions.parquet")
    truth = true_intents(sessions, work / "sim")
    by_intent: dict[str, list[str]] = {}
    for sid, intent in truth.items():
        by_intent.setdefault(intent, []).append(sid)
    top = [name for name, _ in Counter(truth.values()).most_common(n_labels)]
    described = {spec.name: spec.description for spec in INTENTS}
    events = dict(zip(sessions.column("session_id").to_pylist(), sessions.column("events").to_pylist(), strict=True))
    suffix = site_suffix([e.get("page_title") for evs in events.values() for e in evs]) or ""
    texts = {sid: render_pages(evs, suffix=suffix) for sid, evs in events.items()}
    labels = [
        Label("", name.replace("_", " ").capitalize(), described[name], "Banking", [by_intent[name][0]],
              visits=[texts[by_intent[name][0]]])
        for name in top
    ]  # fmt: skip
    taxonomy = Taxonomy.create(labels)
    shots = next(iter(LabelVisits(1).blocks(sessions.slice(0, 1), taxonomy, suffix).values()))
    examples = {sid for lb in taxonomy.labels for sid in lb.examples}
    ids = sorted(sid for sid in truth if sid not in examples)[:n_sessions]
    calibration = label_request(taxonomy, CONTENT_FREE, shots)
    info = {
        "visitors": visitors,
        "days": days,
        "world_seed": seed,
        "sessions_in_world": sessions.num_rows,
        "labels": taxonomy.names,
        "labelled_sessions": len(ids),
    }
    return calibration, [label_request(taxonomy, texts[sid], shots) for sid in ids], info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=30, help="label requests timed per backend")
    ap.add_argument("--labels", type=int, default=12, help="taxonomy labels besides Other")
    ap.add_argument("--visitors", type=int, default=300, help="simulated visitors")
    ap.add_argument("--days", type=int, default=7, help="simulated days")
    ap.add_argument("--world-seed", type=int, default=0, help="simulator seed")
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads per backend")
    ap.add_argument("--n-ctx", type=int, default=8192, help="context window")
    ap.add_argument("--sequential", action="store_true", help="also time the new settings one decode per choice")
    ap.add_argument("--flash-attn", action="store_true", help="also time the new settings with flash attention")
    ap.add_argument("--repack", action="store_true", help="also time the new path with repacked weights")
    ap.add_argument("--noise-floor", action="store_true", help="also run the old settings in another order")
    ap.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    args = ap.parse_args()

    from clickintent.llm.local import LocalBackend
    from clickintent.taxonomy.label import decide

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-llm-label-") as tmp:
        calibration, requests, info = build_requests(
            Path(tmp), args.visitors, args.days, args.world_seed, args.labels, args.sessions
        )
    configs: dict[str, dict[str, Any]] = {"old": OLD, "new": NEW}
    if args.sequential:
        configs["sequential"] = SEQUENTIAL
    if args.flash_attn:
        configs["new-flash-attn"] = FLASH
    if args.repack:
        configs["new-repack"] = REPACK
    if args.noise_floor:
        configs[SHUFFLED] = OLD
    backends = {
        name: LocalBackend(n_threads=args.threads, n_ctx=args.n_ctx, progress=False, **cfg)
        for name, cfg in configs.items()
    }
    llm0 = next(iter(backends.values())).load()
    for b in backends.values():
        b.load()
    n_tokens = [len(llm0.tokenize(r.prompt.encode("utf-8"), add_bos=True)) for r in requests]
    print(f"world: {info}", file=sys.stderr)
    print(
        f"prompt tokens: median {statistics.median(n_tokens)}, range {min(n_tokens)}-{max(n_tokens)}", file=sys.stderr
    )

    priors: dict[str, Any] = {}
    warmup: dict[str, float] = {}
    for name, b in backends.items():  # the calibration request: the whole shared prefix, once per process
        t0 = time.perf_counter()
        priors[name] = b.complete(calibration).choice_logprobs
        warmup[name] = time.perf_counter() - t0
    evaluated0 = {name: b.prompt_tokens_evaluated for name, b in backends.items()}

    secs: dict[str, list[float]] = {name: [] for name in backends}
    answers: dict[str, list[Any]] = {name: [None] * len(requests) for name in backends}
    names = list(backends)
    shuffled = random.Random(0).sample(range(len(requests)), len(requests))
    for i in range(len(requests)):
        for name in names if i % 2 == 0 else names[::-1]:
            j = shuffled[i] if name == SHUFFLED else i
            t0 = time.perf_counter()
            answers[name][j] = backends[name].complete(requests[j])
            secs[name].append(time.perf_counter() - t0)
        row = "  ".join(f"{name} {secs[name][-1]:.2f}s" for name in names)
        print(f"session {i + 1}/{len(requests)} ({n_tokens[i]} tokens): {row}", file=sys.stderr)

    results: dict[str, Any] = {
        "world": info,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_start": load_start,
            "load_end": os.getloadavg(),
            "threads": args.threads,
        },
        "prompt_tokens": {"median": statistics.median(n_tokens), "min": min(n_tokens), "max": max(n_tokens)},
        "configs": {
            name: {
                **cfg,
                "n_batch": backends[name].n_batch,
                "repack": backends[name].repack,
                "batch_choices": backends[name].batch_choices,
            }
            for name, cfg in configs.items()
        },
        "backends": {},
    }

    def agreement(name: str, ref: str) -> dict[str, Any]:
        mine, theirs = answers[name], answers[ref]
        pairs = list(zip(mine, theirs, strict=True))
        same_label = sum(decide(a, priors[name])[0] == decide(o, priors[ref])[0] for a, o in pairs)
        diff = max(
            abs((a.choice_logprobs or {})[k] - v) for a, o in pairs for k, v in (o.choice_logprobs or {}).items()
        )
        return {
            f"same_top_choice_as_{ref}": f"{sum(a.text == o.text for a, o in pairs)}/{len(pairs)}",
            f"same_calibrated_label_as_{ref}": f"{same_label}/{len(pairs)}",
            f"max_abs_score_diff_vs_{ref}": round(diff, 3),
        }

    for name in names:
        s = secs[name]
        results["backends"][name] = {
            "median_s": round(statistics.median(s), 3),
            "mean_s": round(statistics.mean(s), 3),
            "calibration_s": round(warmup[name], 2),
            "prompt_tokens_evaluated_per_request": round(
                (backends[name].prompt_tokens_evaluated - evaluated0[name]) / len(requests), 1
            ),
            **agreement(name, "old"),
            **(agreement(name, "sequential") if "sequential" in backends else {}),
        }
    for name in names[1:]:
        if name == SHUFFLED:
            continue
        ratios = [o / n for o, n in zip(secs["old"], secs[name], strict=True)]
        results["backends"][name]["speedup_ratio_of_medians"] = round(
            statistics.median(secs["old"]) / statistics.median(secs[name]), 2
        )
        results["backends"][name]["speedup_median_of_ratios"] = round(statistics.median(ratios), 2)
    results["machine"]["load_end"] = os.getloadavg()

    print(json.dumps(results, indent=2))
    for name in names:
        r = results["backends"][name]
        extra = f", x{r['speedup_ratio_of_medians']} vs old" if "speedup_ratio_of_medians" in r else ""
        print(f"{name}: {r['median_s']} s/label median ({r['mean_s']} mean){extra}", file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
