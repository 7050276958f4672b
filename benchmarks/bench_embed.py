"""Embedding speed: batch sessions/s and single-session latency of the default encoder on 20-event sessions.

Builds toy sessions (clickintent.encoder.toy) of exactly --events events, a default-config encoder over
their vocabulary (random weights: speed does not depend on them), and warms the text-vector cache, so
the timed runs see cached text vectors as in production. Then:

- batch: `Embedder.embed_sessions` over all sessions (featurize + model), --repeats times, median;
  once with torch's default threads and once with one thread;
- single: `Embedder.embed_one` per session with torch.set_num_threads(1), p50 and p99 over --single calls.

    python -m benchmarks.bench_embed                      # MiniLM text vectors (cached after warm-up)
    python -m benchmarks.bench_embed --text-model hashing-384 --sessions 4096 --repeats 3   # quick
"""

from __future__ import annotations

import os

# Before torch loads OpenMP (see clickintent/encoder/__init__.py): 10-50x faster on a shared 2-core box.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import statistics
import tempfile
import time

import numpy as np
import torch

from clickintent.encoder.embed import Embedder
from clickintent.encoder.features import Vocab
from clickintent.encoder.model import EncoderConfig, SessionEncoder
from clickintent.encoder.text import MINILM_NAME, TextVectors, text_encoder
from clickintent.encoder.toy import toy_sessions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=16_384, help="sessions per batch run")
    parser.add_argument("--events", type=int, default=20, help="events per session")
    parser.add_argument("--repeats", type=int, default=5, help="timed batch runs (median reported)")
    parser.add_argument("--single", type=int, default=1000, help="timed embed_one calls")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--text-model", default=MINILM_NAME, choices=[MINILM_NAME, "hashing-384"])
    parser.add_argument("--text-cache", default=None, help="text cache dir (default: a fresh temp dir)")
    args = parser.parse_args()

    table, _ = toy_sessions(args.sessions, seed=0, fixed_length=args.events, extra_pages_per_topic=200)
    vocab = Vocab.build(table, text_model=args.text_model)
    torch.manual_seed(0)
    model = SessionEncoder(EncoderConfig().for_vocab(vocab))
    cache = args.text_cache or tempfile.mkdtemp(prefix="bench-embed-text-")
    text = TextVectors(text_encoder(args.text_model), cache)
    emb = Embedder(model, vocab, "bench", text, "cpu", batch_size=args.batch_size)
    t = time.perf_counter()
    emb.embed_sessions(table)  # warm-up: fills the text cache
    warm = time.perf_counter() - t

    result: dict[str, object] = {
        "sessions": args.sessions, "events_per_session": args.events, "batch_size": args.batch_size,
        "text_model": args.text_model, "params": model.num_params(), "warmup_s_incl_text": round(warm, 2),
        "loadavg_before": os.getloadavg()[0],
    }  # fmt: skip
    default_threads = torch.get_num_threads()
    for threads in sorted({default_threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            emb.embed_sessions(table)
            times.append(time.perf_counter() - t)
        result[f"batch_sessions_per_s_{threads}thr"] = round(args.sessions / statistics.median(times))
        result[f"batch_best_sessions_per_s_{threads}thr"] = round(args.sessions / min(times))

    torch.set_num_threads(1)
    events = [r["events"] for r in table.slice(0, min(args.single, args.sessions)).to_pylist()]
    for ev in events[:20]:
        emb.embed_one(ev)
    lat = []
    for i in range(args.single):
        ev = events[i % len(events)]
        t = time.perf_counter()
        emb.embed_one(ev)
        lat.append(time.perf_counter() - t)
    lat_ms = np.array(lat) * 1e3
    result |= {
        "single_p50_ms": round(float(np.percentile(lat_ms, 50)), 3),
        "single_p99_ms": round(float(np.percentile(lat_ms, 99)), 3),
        "loadavg_after": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
