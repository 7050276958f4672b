"""How far the local backend's log-probabilities move between llama.cpp code paths (issue 16).

The same prompts as the LLM tests, scored three ways in one process: choices batched in one decode
(`batch_choices=True`, the default), one decode per choice (`batch_choices=False`), and the first token of a
greedy generation re-scored after the fact. Each is a different llama.cpp code path (the number of tokens in
a decode picks the kernel), and a build with other CPU instructions (AVX-512 vs AVX2) is another again. Run
it under each build and compare the JSON files: the tests' tolerances come from these differences.

Printed: the largest difference per comparison, whether the chosen answer and the ranking agree, and the
llama.cpp build (`llama_print_system_info`). `--out` writes every score, so two builds can be compared
(`--compare A.json B.json`: the same code path on two instruction sets).

    python -m benchmarks.bench_llm_paths --out /tmp/paths-avx2.json
    python -m benchmarks.bench_llm_paths --compare /tmp/paths-avx512.json /tmp/paths-avx2.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tests.test_llm_integration import CITIES, FEW_SHOT
from tests.test_llm_local_batch import LABELS, VISITS, prompt


def _ranking_flips(a: dict[str, float], b: dict[str, float]) -> list[tuple[str, str, float]]:
    """Pairs ordered differently by a and b, with the larger of their two score gaps."""
    names = sorted(a)
    flips = []
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            if (a[x] - a[y]) * (b[x] - b[y]) < 0:
                flips.append((x, y, round(max(abs(a[x] - a[y]), abs(b[x] - b[y])), 4)))
    return flips


def measure() -> dict[str, Any]:
    import llama_cpp

    from clickintent.llm import Request
    from clickintent.llm.local import LocalBackend, default_model_path

    gguf = default_model_path()
    batched = LocalBackend(gguf, n_ctx=2048, progress=False)
    single = LocalBackend(gguf, n_ctx=2048, progress=False, batch_choices=False)
    scores: dict[str, Any] = {"build": llama_cpp.llama_print_system_info().decode().strip()}

    c = batched.complete(Request(FEW_SHOT, choices=CITIES))
    g = batched.complete(Request(FEW_SHOT, max_tokens=4, stop=("\n",), logprobs=True))
    assert c.choice_logprobs is not None and g.token_logprobs is not None
    scores["cities"] = {
        "batched": c.choice_logprobs,
        "answer": c.text,
        "generated": g.text.strip(),
        "generated_first_token": g.token_logprobs[0],
    }
    visits = []
    for visit in VISITS:
        got = batched.choice_token_logprobs(prompt(visit), LABELS)
        want = single.choice_token_logprobs(prompt(visit), LABELS)
        visits.append({"batched": got, "single": want})
    scores["visits"] = visits
    return scores


def summarise(s: dict[str, Any]) -> dict[str, Any]:
    cities = s["cities"]
    first, rows = 0.0, []
    total, one_token, flips = 0.0, 0.0, []
    for v in s["visits"]:
        got, want = v["batched"], v["single"]
        for name in LABELS:
            first = max(first, abs(got[name][0] - want[name][0]))
            total = max(total, abs(sum(got[name]) - sum(want[name])))
            if len(got[name]) == 1:
                one_token = max(one_token, abs(got[name][0] - want[name][0]))
        a = {n: sum(got[n]) for n in LABELS}
        b = {n: sum(want[n]) for n in LABELS}
        rows.append(max(a, key=a.__getitem__) == max(b, key=b.__getitem__))
        flips += _ranking_flips(a, b)
    return {
        "build": s["build"],
        "cities: generated first token vs batched choice": round(
            abs(cities["generated_first_token"] - cities["batched"][cities["answer"]]), 4
        ),
        "cities: generated answer == scored answer": cities["generated"] == cities["answer"],
        "visits: batched vs single, first token": round(first, 4),
        "visits: batched vs single, single-token choices": round(one_token, 4),
        "visits: batched vs single, whole choice": round(total, 4),
        "visits: same top choice": all(rows),
        "visits: ranking flips (pair, larger gap)": flips,
    }


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The same code path on two builds: the largest difference of any score, and answer agreement."""
    out: dict[str, Any] = {"builds": [a["build"], b["build"]]}
    ca, cb = a["cities"], b["cities"]
    out["cities batched"] = round(max(abs(ca["batched"][n] - cb["batched"][n]) for n in CITIES), 4)
    out["cities answer same"] = ca["answer"] == cb["answer"]
    for path in ("batched", "single"):
        diffs, same, flips = 0.0, True, []
        for va, vb in zip(a["visits"], b["visits"], strict=True):
            sa = {n: sum(va[path][n]) for n in LABELS}
            sb = {n: sum(vb[path][n]) for n in LABELS}
            diffs = max(diffs, max(abs(sa[n] - sb[n]) for n in LABELS))
            same &= max(sa, key=sa.__getitem__) == max(sb, key=sb.__getitem__)
            flips += _ranking_flips(sa, sb)
        out[f"visits {path}: whole choice"] = round(diffs, 4)
        out[f"visits {path}: same top choice"] = same
        out[f"visits {path}: ranking flips"] = flips
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="Write every score here (JSON).")
    parser.add_argument("--compare", nargs=2, type=Path, default=None, metavar=("A", "B"),
                        help="Compare two --out files instead of measuring.")  # fmt: skip
    args = parser.parse_args()
    if args.compare:
        a, b = (json.loads(p.read_text()) for p in args.compare)
        print(json.dumps(compare(a, b), indent=2))
        return
    scores = measure()
    if args.out:
        args.out.write_text(json.dumps(scores, indent=1) + "\n")
    print(json.dumps(summarise(scores), indent=2))


if __name__ == "__main__":
    main()
