"""Small example exports in each tool's published schema, written from one seeded set of journeys.

Every sample holds the same visits: a dozen visitors (by default), a few sessions each, logins, site
searches, rows shuffled out of order, one exact duplicate row and one malformed row (a truncated line);
the Adobe sample adds two hits Adobe itself excludes. `expected_sessions` says what sessionizing the
ingested sample must give, so tests check each preset end to end; the docs' worked examples and the
ingest benchmark write their files with it too. Field layouts follow the sources named in each preset's
module. What it leaves out: every column a tool may export that no preset reads is not reproduced
(the GA4 sample does carry GA4's other top-level fields, so its rows are full size).

    python -m clickintent.ingest.presets.samples ga4 out/samples     # writes out/samples/ga4.json
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.parquet as pq

from clickintent.ingest.presets.snowplow import ENRICHED_FIELDS

HOST = "https://www.bank.example"
PAGES = [("/", "Home"), ("/cards", "Credit cards"), ("/cards/cashback", "Cashback card"),
         ("/savings", "Savings accounts"), ("/loans/personal", "Personal loans"), ("/mortgages", "Mortgages"),
         ("/help/contact", "Contact us")]  # fmt: skip
SEARCHES = ["cashback card", "fixed rate mortgage", "isa rates", "personal loan calculator"]
T0 = int(datetime(2024, 3, 1, 8, tzinfo=UTC).timestamp() * 1_000_000)


@dataclass(frozen=True)
class Hit:
    """One event of the journeys, before any tool's layout."""

    visitor: str  # "HIGH.LOW" digits: GA4's user_pseudo_id form; Adobe splits it into post_visid_high/low
    session: int  # the visitor's session number, from 1
    ts_us: int
    kind: str  # page_view | search | login
    url: str
    title: str
    referrer: str | None
    query: str | None  # the search terms of a search
    customer: str | None  # set on the login and on every later event of its session (the tools do)
    device: str  # desktop | mobile


def journeys(visitors: int = 12, seed: int = 0, first: int = 0) -> list[Hit]:
    """Seeded visits of visitors first.. first+visitors-1: each 1-3 sessions a day apart, 3-8 events 1-4
    minutes apart."""
    rng = random.Random(seed)
    hits: list[Hit] = []
    for v in range(first, first + visitors):
        visitor = f"{1_000_000_000 + v * 7919}.{1_709_280_000 + v}"
        device = "mobile" if v % 3 == 0 else "desktop"
        for s in range(1, rng.randint(1, 3) + 1):
            ts = T0 + (v % 24 * 3_600 + (s + v // 24 % 28) * 86_400) * 1_000_000  # visits spread over a month
            n, customer = rng.randint(3, 8), None
            login_at = rng.randint(1, n - 1) if v % 4 == 1 and s == 1 else -1  # every 4th visitor logs in
            search_at = rng.randint(0, n - 1) if (v + s) % 3 == 0 else -1
            referrer = "https://www.google.com/"
            for i in range(n):
                path, title = PAGES[rng.randrange(len(PAGES))]
                kind, query = "page_view", None
                if i == login_at:
                    kind, path, title, customer = "login", "/login", "Log in", f"C{100 + v}"
                elif i == search_at:
                    query = SEARCHES[rng.randrange(len(SEARCHES))]
                    kind, path, title = "search", "/search?q=" + query.replace(" ", "+"), "Search results"
                hits.append(Hit(visitor, s, ts, kind, HOST + path, title, referrer, query, customer, device))
                referrer, ts = HOST + path, ts + rng.randint(60, 240) * 1_000_000
    return hits


def visitor_id(preset: str, hit: Hit) -> str:
    """The contract visitor_id the preset gives the sample's visitor (each tool names cookies its own way)."""
    if preset == "adobe":
        return hit.visitor.replace(".", ":")  # post_visid_high:post_visid_low
    return hit.visitor if preset == "ga4" else _vid(hit, preset)


def expected_sessions(hits: list[Hit], preset: str) -> set[tuple[str, int, str | None, int]]:
    """(visitor_id, events, customer_id, start in us) of every session the preset's sample must give."""
    sessions: dict[tuple[str, int], list[Hit]] = {}
    for h in hits:
        sessions.setdefault((h.visitor, h.session), []).append(h)
    return {
        (visitor_id(preset, hs[0]), len(hs), next((h.customer for h in hs if h.kind == "login"), None),
         min(h.ts_us for h in hs))
        for hs in sessions.values()
    }  # fmt: skip


def _iso(ts_us: int, sep: str = "T", zone: str = "Z") -> str:
    text = datetime.fromtimestamp(ts_us / 1e6, UTC).strftime(f"%Y-%m-%d{sep}%H:%M:%S.%f")[:-3]
    return text + zone


def _session_start(hits: list[Hit], h: Hit) -> int:
    return min(x.ts_us for x in hits if (x.visitor, x.session) == (h.visitor, h.session))


def _vid(hit: Hit, salt: str) -> str:
    """A tool's id for the hit's visitor."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{salt}|{hit.visitor}"))


def _sid(hit: Hit, salt: str) -> str:
    """A tool's id for the hit's session."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{salt}|{hit.visitor}|{hit.session}"))


# --- GA4 BigQuery export ------------------------------------------------------------------------------


def ga4_rows(hits: list[Hit]) -> Iterator[dict[str, Any]]:
    """GA4 export rows with Python types (ints as ints); `write_ga4` writes them as `bq extract` would."""
    starts: dict[tuple[str, int], int] = {}
    for h in hits:
        starts[(h.visitor, h.session)] = min(starts.get((h.visitor, h.session), h.ts_us), h.ts_us)
    for i, h in enumerate(hits):
        session_id = starts[(h.visitor, h.session)] // 1_000_000
        params: list[tuple[str, str, Any]] = [
            ("page_location", "string_value", h.url), ("page_title", "string_value", h.title),
            # ga_session_id "sometimes arrives as a string": every 5th row carries it as one
            ("ga_session_id", "string_value" if i % 5 == 0 else "int_value", session_id if i % 5 else str(session_id)),
            ("ga_session_number", "int_value", h.session), ("engaged_session_event", "int_value", 1),
            ("engagement_time_msec", "int_value", 1_000 + i % 7 * 250), ("batch_page_id", "int_value", i),
        ]  # fmt: skip
        if h.referrer:
            params.append(("page_referrer", "string_value", h.referrer))
        if h.query:
            params.append(("search_term", "string_value", h.query))
        if h.kind == "login":
            params.append(("method", "string_value", "password"))
        name = {"search": "view_search_results", "login": "login"}.get(h.kind, "page_view")
        row: dict[str, Any] = {
            "event_date": datetime.fromtimestamp(h.ts_us / 1e6, UTC).strftime("%Y%m%d"),
            "event_timestamp": h.ts_us, "event_name": name,
            "event_params": [{"key": k, "value": {t: v}} for k, t, v in params],
            "event_previous_timestamp": h.ts_us - 60_000_000, "event_bundle_sequence_id": 1_000 + i,
            "event_server_timestamp_offset": 512_000, "user_pseudo_id": h.visitor,
            "privacy_info": {"analytics_storage": "Yes", "ads_storage": "No", "uses_transient_token": "No"},
            "user_properties": [], "user_first_touch_timestamp": T0,
            "device": {"category": h.device, "mobile_brand_name": "Apple" if h.device == "mobile" else "Google",
                       "mobile_model_name": "iPhone" if h.device == "mobile" else "Chrome",
                       "operating_system": "iOS" if h.device == "mobile" else "Windows",
                       "operating_system_version": "17.3", "language": "en-gb", "is_limited_ad_tracking": "No",
                       "web_info": {"browser": "Chrome", "browser_version": "121.0.6167.184",
                                    "hostname": "www.bank.example"}},
            "geo": {"city": "Leeds", "country": "United Kingdom", "continent": "Europe",
                    "region": "England", "sub_continent": "Northern Europe", "metro": "(not set)"},
            "traffic_source": {"name": "(organic)", "medium": "organic", "source": "google"},
            "stream_id": "4178852161", "platform": "WEB", "items": [], "is_active_user": True,
            "collected_traffic_source": {"manual_source": "google", "manual_medium": "organic"},
            "batch_event_index": 0, "batch_page_id": i, "batch_ordering_id": i,
        }  # fmt: skip
        if h.customer:
            row["user_id"] = h.customer
        yield row


_INT64 = {"event_timestamp", "event_previous_timestamp", "event_bundle_sequence_id", "user_first_touch_timestamp",
          "event_server_timestamp_offset", "batch_event_index", "batch_page_id", "batch_ordering_id"}  # fmt: skip


def bq_json(row: dict[str, Any]) -> str:
    """One line as `bq extract --destination_format NEWLINE_DELIMITED_JSON` writes it: INT64 as strings."""
    out = {k: (str(v) if k in _INT64 else v) for k, v in row.items()}
    out["event_params"] = [
        {"key": p["key"], "value": {t: (str(v) if t == "int_value" else v) for t, v in p["value"].items()}}
        for p in row["event_params"]
    ]
    return json.dumps(out, separators=(",", ":"))


def write_ga4(hits: list[Hit], path: Path, seed: int = 0) -> Path:
    lines = [bq_json(r) for r in ga4_rows(hits)]
    return _write_lines(path, lines, seed, malformed=lambda line: line[: len(line) // 2])


def write_ga4_parquet(hits: list[Hit], path: Path, seed: int = 0) -> Path:
    """The same rows as a Parquet export (typed INT64s); no malformed row: Parquet has none to give."""
    value = pa.struct([("string_value", pa.string()), ("int_value", pa.int64()), ("float_value", pa.float64()),
                       ("double_value", pa.float64())])  # fmt: skip
    rows = list(ga4_rows(hits))
    for r in rows:
        for p in r["event_params"]:
            if "string_value" in p["value"]:
                p["value"]["string_value"] = str(p["value"]["string_value"])
    rows.append(rows[len(rows) // 3])  # one exact duplicate
    random.Random(seed).shuffle(rows)
    columns = ["event_date", "event_timestamp", "event_name", "user_pseudo_id", "user_id", "platform", "device"]
    table = pa.table({c: pa.array([r.get(c) for r in rows]) for c in columns})
    params = pa.array([r["event_params"] for r in rows], pa.list_(pa.struct([("key", pa.string()), ("value", value)])))
    pq.write_table(table.append_column("event_params", params), path)
    return path


# --- Snowplow enriched TSV / atomic.events CSV --------------------------------------------------------


def _snowplow_row(hits: list[Hit], h: Hit, i: int) -> dict[str, str]:
    ts = _iso(h.ts_us, " ", "")
    row = dict.fromkeys(ENRICHED_FIELDS, "")
    row.update(app_id="bank-web", platform="web", etl_tstamp=_iso(h.ts_us + 90_000_000, " ", ""),
               collector_tstamp=ts, dvce_created_tstamp=ts, derived_tstamp=ts, event_id=str(uuid.uuid5(
               uuid.NAMESPACE_URL, f"sp|{i}")), name_tracker="sp", v_tracker="js-3.17.0", v_collector="ssc-2.9.0",
               v_etl="snowplow-enrich-3.9.0", user_id=h.customer or "", domain_userid=_vid(h, "snowplow"),
               domain_sessionidx=str(h.session), domain_sessionid=_sid(h, "sid"), network_userid=_vid(h, "nuid"),
               page_url=h.url, page_title=h.title, page_referrer=h.referrer or "", page_urlscheme="https",
               page_urlhost="www.bank.example", page_urlpath=h.url.removeprefix(HOST).split("?")[0],
               geo_country="GB", br_name="Chrome", br_family="Chrome", os_name="Windows 10",
               dvce_type="Mobile" if h.device == "mobile" else "Computer",
               dvce_ismobile="1" if h.device == "mobile" else "0", useragent="Mozilla/5.0",
               event_vendor="com.snowplowanalytics.snowplow", event_format="jsonschema",
               event_version="1-0-0")  # fmt: skip
    if h.kind == "login":  # Snowplow has no login event: a structured event with action "login"
        row.update(event="struct", event_name="event", se_category="account", se_action="login")
    elif h.kind == "search":
        terms = {"schema": "iglu:com.snowplowanalytics.snowplow/site_search/jsonschema/1-0-0",
                 "data": {"terms": (h.query or "").split(), "totalResults": 14, "pageResults": 8}}  # fmt: skip
        row.update(
            event="unstruct",
            event_name="site_search",
            unstruct_event=json.dumps(
                {"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0", "data": terms}
            ),
        )
    else:
        row.update(event="page_view", event_name="page_view")
    return row


def write_snowplow(hits: list[Hit], path: Path, seed: int = 0) -> Path:
    """The enriched TSV: no header, 131 tab-separated fields in the SDK's order."""
    lines = ["\t".join(_snowplow_row(hits, h, i).values()) for i, h in enumerate(hits)]
    return _write_lines(path, lines, seed, malformed=lambda line: "\t".join(line.split("\t")[:20]))


def write_snowplow_atomic(hits: list[Hit], path: Path, seed: int = 0) -> Path:
    """An atomic.events export: CSV with a header, quoted where needed."""
    rows = [_snowplow_row(hits, h, i) for i, h in enumerate(hits)]
    rows.append(rows[len(rows) // 3])
    random.Random(seed).shuffle(rows)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(ENRICHED_FIELDS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        f.write("web,2024-03-01 08:00:00.000\n")  # a truncated row
    return path


# --- Segment / RudderStack ----------------------------------------------------------------------------


def write_segment(hits: list[Hit], path: Path, seed: int = 0, rudderstack: bool = False) -> Path:
    lines = []
    for i, h in enumerate(hits):
        page = {"url": h.url, "title": h.title, "path": h.url.removeprefix(HOST), "referrer": h.referrer or ""}
        context: dict[str, Any] = {"page": page, "userAgent": "Mozilla/5.0", "locale": "en-GB",
                                   "library": {"name": "analytics.js", "version": "5.2.0"}}  # fmt: skip
        call: dict[str, Any] = {"type": "page", "name": h.title, "properties": dict(page)}
        if h.kind == "login":  # identify links anonymousId to userId
            call = {"type": "identify", "traits": {"plan": "current-account"}}
        elif h.kind == "search":
            call = {"type": "track", "event": "Products Searched", "properties": {"query": h.query}}
        if rudderstack:
            context = {
                **context,
                "sessionId": _session_start(hits, h) // 1000,
                "library": {"name": "RudderLabs JavaScript SDK"},
            }
        tool = "rudderstack" if rudderstack else "segment"
        event = {**call, "anonymousId": _vid(h, tool), "messageId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"m{i}")),
                 "timestamp": _iso(h.ts_us), "originalTimestamp": _iso(h.ts_us), "sentAt": _iso(h.ts_us + 40_000),
                 "receivedAt": _iso(h.ts_us + 90_000), "context": context,
                 "channel": "web" if rudderstack else "client"}  # fmt: skip
        if h.customer:
            event["userId"] = h.customer
        lines.append(json.dumps(event, separators=(",", ":")))
    return _write_lines(path, lines, seed, malformed=lambda line: line[: len(line) // 2])


# --- Adobe data feed ----------------------------------------------------------------------------------

ADOBE_COLUMNS = ("accept_language", "browser", "cust_visid", "date_time", "exclude_hit", "hit_source", "hit_time_gmt",
                 "hitid_high", "hitid_low", "ip", "mcvisid", "new_visit", "page_event", "page_event_var2", "page_url",
                 "pagename", "post_event_list", "post_evar1", "post_page_event", "post_page_url", "post_pagename",
                 "post_referrer", "post_visid_high", "post_visid_low", "post_visid_type", "user_agent", "visit_num",
                 "visit_page_num", "visit_start_time_gmt", "visid_high", "visid_low")  # fmt: skip


def write_adobe(hits: list[Hit], path: Path, seed: int = 0) -> Path:
    """hit_data.tsv (no header) and column_headers.tsv beside it; two extra hits Adobe excludes."""
    lines: list[str] = []
    depth: dict[tuple[str, int], int] = {}
    for i, h in enumerate(hits):
        high, low = h.visitor.split(".")
        key = (h.visitor, h.session)
        depth[key] = depth.get(key, 0) + 1
        link = h.kind == "login"  # the login is a custom link named "login": s.tl(true, 'o', 'login')
        row = {"accept_language": "en-GB", "browser": "1234", "cust_visid": h.customer or "",
               "date_time": _iso(h.ts_us, " ", "")[:19], "exclude_hit": "0", "hit_source": "1",
               "hit_time_gmt": str(h.ts_us // 1_000_000), "hitid_high": str(7_000 + i), "hitid_low": str(9_000 + i),
               "ip": "192.0.2.0", "mcvisid": high + low, "new_visit": "1" if depth[key] == 1 else "0",
               "page_event": "10" if link else "0", "page_event_var2": "login" if link else "",
               "page_url": h.url, "pagename": h.title, "post_event_list": "200" if link else "",
               "post_evar1": h.query or "", "post_page_event": "100" if link else "0",
               "post_page_url": "" if link else h.url, "post_pagename": h.title, "post_referrer": h.referrer or "",
               "post_visid_high": high, "post_visid_low": low, "post_visid_type": "3", "user_agent": "Mozilla/5.0",
               "visit_num": str(h.session), "visit_page_num": str(depth[key]),
               "visit_start_time_gmt": str(_session_start(hits, h) // 1_000_000), "visid_high": high,
               "visid_low": low}  # fmt: skip
        lines.append("\t".join(row[c] for c in ADOBE_COLUMNS))
    excluded = []
    for flag, value in (("exclude_hit", "4"), ("hit_source", "5")):  # an IP-excluded hit, a data-source row
        fields = lines[len(lines) // 2].split("\t")
        fields[ADOBE_COLUMNS.index(flag)] = value
        fields[ADOBE_COLUMNS.index("hitid_low")] += "0"
        excluded.append("\t".join(fields))
    (path.parent / "column_headers.tsv").write_text("\t".join(ADOBE_COLUMNS) + "\n")
    return _write_lines(path, lines + excluded, seed, malformed=lambda line: "\t".join(line.split("\t")[:12]))


# --- PostHog ------------------------------------------------------------------------------------------


def posthog_events(hits: list[Hit]) -> Iterator[dict[str, Any]]:
    """PostHog export rows. A search is a custom `product_search` event (PostHog has no search event)."""
    for i, h in enumerate(hits):
        device_id = _vid(h, "posthog")
        props: dict[str, Any] = {"$current_url": h.url, "$host": "www.bank.example",
                                 "$pathname": h.url.removeprefix(HOST), "$referrer": h.referrer or "$direct",
                                 "$device_type": h.device.title(),
                                 "$lib": "web", "$lib_version": "1.105.0", "$browser": "Chrome", "$os": "Windows",
                                 "$session_id": _sid(h, "phs"), "$device_id": device_id,
                                 "$is_identified": h.customer is not None}  # fmt: skip
        event = "$pageview"
        if h.kind == "login":
            event, props["$anon_distinct_id"] = "$identify", device_id
        elif h.kind == "search":
            event, props["query"] = "product_search", h.query
        else:
            props["title"] = h.title
        yield {"uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"ph{i}")), "event": event, "properties": props,
               "distinct_id": h.customer or device_id, "timestamp": _iso(h.ts_us, "T", "+00:00")}  # fmt: skip


def write_posthog(hits: list[Hit], path: Path, seed: int = 0) -> Path:
    lines = [json.dumps(e, separators=(",", ":")) for e in posthog_events(hits)]
    return _write_lines(path, lines, seed, malformed=lambda line: line[: len(line) // 2])


def write_posthog_csv(hits: list[Hit], path: Path, seed: int = 0) -> Path:
    """PostHog's CSV export: `properties` is JSON text in one column."""
    rows = [{**e, "properties": json.dumps(e["properties"])} for e in posthog_events(hits)]
    rows.append(rows[len(rows) // 3])
    random.Random(seed).shuffle(rows)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(
            f, fieldnames=["uuid", "event", "properties", "distinct_id", "timestamp"], lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
        f.write("x,$pageview\n")  # a row cut short
    return path


def _write_lines(path: Path, lines: list[str], seed: int, malformed: Any) -> Path:
    """Shuffled lines, one exact duplicate, one malformed line (the middle one, cut short)."""
    rng = random.Random(seed)
    out = [*lines, lines[len(lines) // 3], malformed(lines[len(lines) // 2])]
    rng.shuffle(out)
    path.write_text("\n".join(out) + "\n")
    return path


WRITERS = {"ga4": ("ga4.json", write_ga4), "snowplow": ("enriched.tsv", write_snowplow),
           "segment": ("segment.json", write_segment), "rudderstack": ("rudderstack.json", None),
           "adobe": ("hit_data.tsv", write_adobe), "posthog": ("posthog.json", write_posthog)}  # fmt: skip


def write_sample(preset: str, out_dir: Path, visitors: int = 12, seed: int = 0) -> Path:
    """Write the sample export for `preset` into `out_dir`; returns the file to ingest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name, writer = WRITERS[preset]
    hits = journeys(visitors, seed)
    if writer is None:
        return write_segment(hits, out_dir / name, seed, rudderstack=True)
    return writer(hits, out_dir / name, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset", choices=sorted(WRITERS))
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--visitors", type=int, default=12)
    args = parser.parse_args()
    # a command-line entry point: its result, the file to ingest, goes to stdout as the CLI's do
    click.echo(write_sample(args.preset, args.out_dir, args.visitors))


if __name__ == "__main__":
    main()
