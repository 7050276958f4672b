"""Prometheus metrics of one service: requests, inference batches, live sessions, redactions, reloads.

Each app gets its own registry (tests start several apps in one process). With several worker processes
the CLI sets PROMETHEUS_MULTIPROC_DIR and /metrics aggregates every worker's files (prometheus-client's
multiprocess mode; gauges are summed over live workers). Labels never carry request data: routes are
path templates (`/v1/sessions/{session_id}/events`), never raw paths.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from clickintent.serve.live import LiveSessions, LiveStats

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "clickintent_requests", "HTTP requests by route template and status.", ["route", "method", "status"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "clickintent_request_seconds", "Time to answer, by route template.", ["route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.rows = Histogram(
            "clickintent_inference_rows", "Sessions (and occluded copies) per encoder call.", buckets=ROW_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.inference = Histogram(
            "clickintent_inference_seconds", "Time of one encoder call (featurize + network + classifier).",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.live = Gauge("clickintent_live_sessions", "Live sessions held.", registry=r, multiprocess_mode="livesum")
        self.live_bytes = Gauge(
            "clickintent_live_bytes", "Estimated bytes of live-session events.", registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.live_started = Counter("clickintent_live_sessions_started", "Live sessions started.", registry=r)
        self.live_events = Counter("clickintent_live_events", "Events appended to live sessions.", registry=r)
        self.live_evicted = Counter(
            "clickintent_live_sessions_evicted", "Live sessions dropped for room (LRU).", registry=r
        )
        self.live_expired = Counter("clickintent_live_sessions_expired", "Live sessions dropped by TTL.", registry=r)
        self.redactions = Counter("clickintent_redactions", "PII matches redacted, by kind.", ["kind"], registry=r)
        self.reloads = Counter("clickintent_reloads", "Bundle reloads by result.", ["result"], registry=r)
        self.model = Gauge(
            "clickintent_model_info", "The bundle being served (value 1).",
            ["bundle_version", "model_version", "taxonomy_version", "engine"], registry=r,
            multiprocess_mode="liveall",
        )  # fmt: skip
        self._live_seen = LiveStats()
        self._model_labels: tuple[str, str, str, str] | None = None

    def observe_inference(self, rows: int, seconds: float) -> None:
        self.rows.observe(rows)
        self.inference.observe(seconds)

    def set_model(self, bundle_version: str, model_version: str, taxonomy_version: str, engine: str) -> None:
        labels = (bundle_version, model_version, taxonomy_version, engine)
        if self._model_labels is not None and self._model_labels != labels:
            self.model.labels(*self._model_labels).set(0)  # (removing labels is not possible in multiprocess mode)
        self.model.labels(*labels).set(1)
        self._model_labels = labels

    def sync_live(self, store: LiveSessions) -> None:
        """Bring the live-session gauges and counters up to the store's numbers."""
        self.live.set(len(store))
        self.live_bytes.set(store.bytes)
        now, seen = store.stats, self._live_seen
        for counter, name in (
            (self.live_started, "started"), (self.live_events, "events"),
            (self.live_evicted, "evicted"), (self.live_expired, "expired"),
        ):  # fmt: skip
            delta = getattr(now, name) - getattr(seen, name)
            if delta:
                counter.inc(delta)
                setattr(seen, name, getattr(now, name))

    def render(self) -> bytes:
        if (path := multiprocess_dir()) is not None:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=path)
            return generate_latest(registry)
        return generate_latest(self.registry)
