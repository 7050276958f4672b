"""PII survival at scale (issue 17): `--per-field` generated cases per field, through every output.

The cases are tests/pii_cases.py's (e-mails, phones, cards, SSNs, secrets; plain, percent-encoded once to
three times, `+`-joined, form-encoded and mixed; in URLs, titles, referrers and searches), drawn the same on
every run. Each goes through three levels, and every PII string still readable is counted:

- redact: `redact`, then what later steps derive (`normalize_url`, a referrer's search words);
- ingest: one JSONL file, one row per case (every fifth with a timestamp ingest refuses, so quarantine is
  exercised), ingested; then events.parquet, quarantine.parquet, ingest_report.json, sessions.parquet and
  the text-vector cache the featurizer fills (no digest may be of a text holding PII);
- service (unless --no-service): a real `clickintent serve` on a toy bundle, with --top-events 64 so the
  explanation returns every event's page; 64 cases per /v1/intent request and per live session (one
  event each); each returned page is checked against its case, every answer against all needles, then
  /metrics, the server's log and its text cache.

    python -m benchmarks.bench_pii --per-field 10000 --out benchmarks/results/pii_survival.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pii_cases import FIELDS, Case, cache_keys, draw_cases, forbidden_digests, readings, survivors

from benchmarks.bench_taxonomy import emit

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
BENIGN = {"url": "https://bank.example/cards", "page_title": "Cards"}
CHUNK = 64  # cases per service request (one event each)


def count(all_cases: list[Case], texts_of: dict[int, list[str]]) -> dict[str, Any]:
    """Survivors per kind and form, over the cases whose outputs are in `texts_of` (case index -> texts)."""
    leaks: Counter[str] = Counter()
    examples = []
    for i, texts in texts_of.items():
        found = survivors(all_cases[i], texts)
        if found:
            c = all_cases[i]
            leaks[f"{c.field}/{c.kind}/{c.form}"] += len(found)
            examples.extend(found[:1])
    return {"cases": len(texts_of), "survivors": sum(leaks.values()), "by_case": dict(leaks), "examples": examples[:5]}


def in_shared_text(all_cases: list[Case], text: str) -> int:
    """Needles (not digit runs: unrelated numbers join there) of any case in a text all cases share; the
    text's readings (as `survivors` reads a text) are made once."""
    seen = [r for line in text.splitlines() for r in readings(line)]
    joined = "\n".join(seen)
    return sum(1 for c in all_cases for n in c.needles if n.lower() in joined)


def level_redact(all_cases: list[Case]) -> dict[str, Any]:
    from clickintent.encoder.features import search_terms
    from clickintent.pii import redact
    from clickintent.urls import normalize_url

    texts_of = {}
    t0 = time.process_time()
    for i, c in enumerate(all_cases):
        clean = redact(c.value)
        texts = [clean]
        if c.field in ("url", "referrer"):
            texts.append(normalize_url(clean))
        if c.field == "referrer":
            texts.append(search_terms(clean))
        texts_of[i] = texts
    cpu = time.process_time() - t0
    return count(all_cases, texts_of) | {"cpu_us_per_case": round(cpu / len(all_cases) * 1e6, 1)}


def level_ingest(all_cases: list[Case], work: Path, bundle: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from clickintent.bundle import load_bundle
    from clickintent.encoder.features import Featurizer
    from clickintent.encoder.io import load_encoder
    from clickintent.encoder.text import HASHING_NAME, HashingEncoder, TextVectors
    from clickintent.ingest import ingest
    from clickintent.sessionize import sessionize

    src = work / "raw.jsonl"
    with src.open("w") as f:
        for i, c in enumerate(all_cases):
            ts = "not a time" if i % 5 == 4 else (T0 + timedelta(seconds=i)).isoformat()
            f.write(json.dumps({"visitor_id": f"v{i}", "ts": ts, **BENIGN, c.field: c.value}) + "\n")
    out = work / "ingest"
    t0 = time.perf_counter()
    report = ingest(src, out)
    seconds = time.perf_counter() - t0
    texts_of: dict[int, list[str]] = {}
    for r in pq.read_table(out / "events.parquet").to_pylist():
        texts_of.setdefault(int(r["visitor_id"][1:]), []).extend(v for v in r.values() if isinstance(v, str))
    for r in pq.read_table(out / "quarantine.parquet").to_pylist():
        texts_of.setdefault(int(json.loads(r["raw"])["visitor_id"][1:]), []).append(r["raw"])
    files = count(all_cases, texts_of)
    sessionize(out / "events.parquet", out / "sessions.parquet")
    sessions = pq.read_table(out / "sessions.parquet")
    per_visitor: dict[int, list[str]] = {}
    for s in sessions.to_pylist():
        for e in s["events"]:
            per_visitor.setdefault(int(s["visitor_id"][1:]), []).extend(v for v in e.values() if isinstance(v, str))
    _, vocab, _ = load_encoder(load_bundle(bundle))
    text = TextVectors(HashingEncoder(), work / "ingest-text")
    Featurizer(vocab, text).frame(sessions)
    text.close()
    keys = cache_keys(work / "ingest-text")
    bad = {k for c in all_cases for k in forbidden_digests(c, HASHING_NAME)}
    return {
        "rows_in": report.rows_in, "rows_out": report.rows_out, "quarantined": report.quarantined,
        "seconds": round(seconds, 1), "events_and_quarantine": files, "sessions": count(all_cases, per_visitor),
        "report_survivors": in_shared_text(all_cases, (out / "ingest_report.json").read_text()),
        "text_cache": {"digests": len(keys), "pii_digests": len(bad & keys)},
    }  # fmt: skip


def level_service(all_cases: list[Case], work: Path, bundle: Path) -> dict[str, Any]:
    import httpx

    from benchmarks.bench_serve import Server
    from clickintent.encoder.text import HASHING_NAME

    key = "bench-pii-key"
    os.environ["CLICKINTENT_API_KEY"] = key
    (work / "serve-text").mkdir()
    server = Server(bundle, 1, "auto", ["--top-events", "64", "--text-cache", str(work / "serve-text"),
                                        "--log-level", "debug"])  # fmt: skip
    texts_of: dict[int, list[str]] = {}
    statuses: Counter[int] = Counter()
    answers_of: dict[int, list[str]] = {}  # the whole answers of each case's requests, checked for needles
    pages = 0

    def record(idx: list[int], r: Any) -> None:
        # An explained event names its position in the request: its page is that case's output
        nonlocal pages
        for i in idx:
            answers_of.setdefault(i, []).append(r.text)
        for e in r.json().get("events") or []:
            texts_of.setdefault(idx[e["index"]], []).append(e["page"])
            pages += 1

    t0 = time.perf_counter()
    try:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=120) as c:
            for start in range(0, len(all_cases), CHUNK):
                idx = list(range(start, min(start + CHUNK, len(all_cases))))
                events = [{"ts": (T0 + timedelta(seconds=j)).isoformat(), **BENIGN,
                           all_cases[i].field: all_cases[i].value} for j, i in enumerate(idx)]  # fmt: skip
                for path in ("/v1/intent", "/v1/sessions"):
                    r = c.post(path, json={"events": events, "explain": True})
                    statuses[r.status_code] += 1
                    if r.status_code == 422:  # a URL that no longer parses once redacted: one at a time
                        for i, e in zip(idx, events, strict=True):
                            one = c.post(path, json={"events": [e], "explain": True})
                            statuses[one.status_code] += 1
                            record([i], one)
                        continue
                    record(idx, r)
            metrics = c.get("/metrics").text
    finally:
        server.stop()
    seconds = time.perf_counter() - t0
    answers = count(all_cases, texts_of)
    needles = [replace(c, digits="") for c in all_cases]
    log = Path(server.log.name).read_text()
    keys = cache_keys(work / "serve-text")
    bad = {k for c in all_cases for k in forbidden_digests(c, HASHING_NAME)}
    return {
        "seconds": round(seconds, 1), "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "answers": answers, "pages_returned": pages, "answer_needles": count(needles, answers_of)["survivors"],
        "metrics_survivors": in_shared_text(all_cases, metrics),
        "log_survivors": in_shared_text(all_cases, log), "log_lines": len(log.splitlines()),
        "text_cache": {"digests": len(keys), "pii_digests": len(bad & keys)},
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-field", type=int, default=10_000, help="generated cases per field")
    ap.add_argument("--no-service", action="store_true", help="skip the service level")
    ap.add_argument("--out", type=Path, default=None, help="also write the results JSON here")
    args = ap.parse_args()

    from benchmarks.bench_serve import ensure_bundle

    before = os.getloadavg()
    t0 = time.time()
    all_cases = [c for f in FIELDS for c in draw_cases(f, args.per_field)]
    generated = time.time() - t0
    work = Path(tempfile.mkdtemp(prefix="bench-pii-"))
    bundle = ensure_bundle(None)
    results: dict[str, Any] = {
        "per_field": args.per_field, "cases": len(all_cases), "generate_seconds": round(generated, 1),
        "by_field": dict(Counter(c.field for c in all_cases)), "by_kind": dict(Counter(c.kind for c in all_cases)),
        "by_form": dict(Counter(c.form for c in all_cases)),
    }  # fmt: skip
    results["redact"] = level_redact(all_cases)
    print(json.dumps({"redact": results["redact"]["survivors"]}), file=sys.stderr)
    results["ingest"] = level_ingest(all_cases, work, bundle)
    print(json.dumps({"ingest": results["ingest"]["events_and_quarantine"]["survivors"]}), file=sys.stderr)
    if not args.no_service:
        results["service"] = level_service(all_cases, work, bundle)
    results |= {"seconds": round(time.time() - t0, 1), "loadavg_before": [round(x, 2) for x in before],
                "loadavg_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}  # fmt: skip
    emit(results, args.out)


if __name__ == "__main__":
    main()
