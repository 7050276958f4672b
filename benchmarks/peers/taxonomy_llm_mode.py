"""Peers side by side (issue 8): the `llm` taxonomy mode (TnT-LLM style) against the simulated truth.

A thin wrapper around `benchmarks/bench_taxonomy.py` (its world, sample and scores, imported): build the
taxonomy with `generate_llm` on an OpenAI-compatible server, label the scoring sample with it, and report
NMI / ARI / many-to-one accuracy against the simulator's true intents, on the same sessions as
bench_taxonomy (same world seed, same G/L samples), so the figures sit beside BERTopic's and the cluster
mode's in docs/BENCHMARKS.md.

The `llm` mode needs a capable instruction-following model (the embedded Gemma 3 270M is a base model and
cannot write a taxonomy). The server comes from `--llm-base-url` or CLICKINTENT_LLM_BASE_URL (for example
http://127.0.0.1:8000/v1 for vLLM, llama.cpp's server or Ollama), the model from `--llm-model`,
CLICKINTENT_LLM_MODEL, or the server's first listed model. With no server reachable the script says so and
exits 0 without running anything.

    CLICKINTENT_LLM_BASE_URL=http://127.0.0.1:8000/v1 python benchmarks/peers/taxonomy_llm_mode.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_common import RESULTS, machine, table, write_result

NAME = "taxonomy_llm_mode"


def probe_server(base_url: str, api_key_env: str | None, timeout: float) -> tuple[bool, str, list[str]]:
    """(reachable, message, model ids) from GET {base_url}/models."""
    req = urllib.request.Request(base_url.rstrip("/") + "/models")
    key = os.environ.get(api_key_env or "")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = json.loads(resp.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError) as e:
        return False, f"no OpenAI-compatible server at {base_url} ({e})", []
    models = [m.get("id") for m in body.get("data", []) if isinstance(m, dict) and m.get("id")]
    return True, f"server at {base_url} lists {len(models)} model(s)", models


def skip(message: str, out: Path) -> None:
    print(f"[taxonomy_llm_mode] skipped: {message}\n"
          "  start a capable OpenAI-compatible server and pass --llm-base-url URL (or CLICKINTENT_LLM_BASE_URL)",
          file=sys.stderr)  # fmt: skip
    previous = json.loads(out.read_text()) if out.exists() else {}
    if "methods" not in previous:  # never overwrite a real result with a skip
        write_result(NAME, {"benchmark": NAME, "skipped": message, "machine": machine()}, out)
    sys.exit(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llm-base-url", default=os.environ.get("CLICKINTENT_LLM_BASE_URL"),
                    help="OpenAI-compatible base URL (default: $CLICKINTENT_LLM_BASE_URL)")  # fmt: skip
    ap.add_argument("--llm-model", default=os.environ.get("CLICKINTENT_LLM_MODEL"),
                    help="model name (default: $CLICKINTENT_LLM_MODEL, else the server's first model)")  # fmt: skip
    ap.add_argument("--llm-api-key-env", default="OPENAI_API_KEY", help="variable holding the API key, if any")
    ap.add_argument("--endpoint", choices=["chat", "completions"], default="chat")
    ap.add_argument("--connect-timeout", type=float, default=5.0, help="seconds to wait for GET /models")
    ap.add_argument("--visitors", type=int, default=1500)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--world-seed", type=int, default=0)
    ap.add_argument("--sample", type=int, default=1000, help="sessions the taxonomy is built from (G)")
    ap.add_argument("--label-sample", type=int, default=200, help="sessions labelled and scored (L)")
    ap.add_argument("--max-labels", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0, help="build seed")
    ap.add_argument("--cache", type=Path, default=None, help="LLM answer cache (default: fresh, so costs are real)")
    ap.add_argument("--out", type=Path, default=RESULTS / f"{NAME}.json")
    args = ap.parse_args()
    if not args.llm_base_url:
        skip("no server given (--llm-base-url or CLICKINTENT_LLM_BASE_URL)", args.out)
    ok, message, models = probe_server(args.llm_base_url, args.llm_api_key_env, args.connect_timeout)
    if not ok:
        skip(message, args.out)
    model = args.llm_model or (models[0] if models else None)
    if not model:
        skip(f"{message}; no model named (--llm-model) and none listed", args.out)
    print(f"[taxonomy_llm_mode] {message}; using model {model}", file=sys.stderr, flush=True)

    import pyarrow as pa

    from benchmarks.bench_taxonomy import CachedEncoder, scores, usage_dict, world
    from clickintent.llm import make_backend
    from clickintent.taxonomy.generate import generate_llm
    from clickintent.taxonomy.label import label_sessions
    from clickintent.taxonomy.render import sample_sessions

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="peer-taxonomy-llm-"))
    sessions, intent, info = world(tmp, args.visitors, args.days, args.world_seed)
    gen = sample_sessions(sessions, args.sample, seed=12345)  # bench_taxonomy's G
    label_ids = set(gen.column("session_id").to_pylist()[: args.label_sample])
    lab = gen.filter(pa.array([s in label_ids for s in gen.column("session_id").to_pylist()]))
    ids = lab.column("session_id").to_pylist()
    truth = [intent[s] for s in ids]
    llm = make_backend("openai", cache=args.cache or tmp / "cache-llm.sqlite", base_url=args.llm_base_url,
                       model=model, endpoint=args.endpoint, api_key_env=args.llm_api_key_env)  # fmt: skip
    t0 = time.perf_counter()
    built = generate_llm(gen, llm, max_labels=args.max_labels, sample=None, seed=args.seed,
                         text_encoder=CachedEncoder(tmp / "text-vectors"))  # fmt: skip
    build_s, build_usage = time.perf_counter() - t0, usage_dict(llm)
    t0 = time.perf_counter()
    labels = label_sessions(lab, built.taxonomy, llm, sample=None, seed=args.seed, example_sessions=gen)
    got = dict(zip(labels.column("session_id").to_pylist(), labels.column("intent").to_pylist(), strict=True))
    s = scores([got[i] for i in ids], truth)
    result: dict[str, Any] = {
        "benchmark": NAME, "machine": machine(), "command": " ".join(["python", *sys.argv]),
        "server": {"base_url": args.llm_base_url, "model": model, "endpoint": args.endpoint},
        "world": info, "G": gen.num_rows, "L": len(ids),
        "methods": {"llm mode": s | {"taxonomy_labels": len(built.taxonomy.labels)}},
        "taxonomy": built.taxonomy.tree().split("\n"),
        "cost": {"build": build_usage | {"wall_seconds": round(build_s, 1)},
                 "all": usage_dict(llm) | {"label_wall_seconds": round(time.perf_counter() - t0, 1)}},
        "wall_seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    path = write_result(NAME, result, args.out)
    print(table(["method", "NMI", "ARI", "many-to-one", "labels used"],
                [["llm mode (" + model + ")", s["nmi"], s["ari"], s["many_to_one"], s["labels_used"]]]))  # fmt: skip
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
