"""The state of one service process: the model being served, its inference thread, live sessions, metrics.

`Service.reload()` loads the bundle again (from the configured path, which may be a symlink a deployment
flips) on a worker thread while requests go on, then swaps one reference. A request takes the model once,
when it starts (deps.ModelDep), and its inference job carries that model, so requests in flight finish on
the old model and new ones get the new model: no request fails or mixes the two. A failed load leaves the
old model serving. Also here: the steps every route shares (redact the events, turn a scored session into
its response fields), so each route module is only its resource's HTTP surface.

Redaction is CPU work that grows with the request (up to ~0.9 s for a 1 MiB body of the worst text:
docs/BENCHMARKS.md), so a request with more than `INLINE_CHARS` characters of text is cleaned in a worker
process (`CLEAN_PROCESSES`, spawned at the first such request), never on the event loop. A process, not a
thread: a thread redacting holds the GIL, which took /healthz's p99 beside a 1 MiB request from 6 ms to
16 ms on the quiet test box, and to 34-55 ms on the busy one (issue 17). Large requests queue for it;
/healthz and small requests go on. A worker that dies (killed for memory, say) is replaced at once.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
from fastapi import HTTPException, status

from clickintent.ingest.transform import REDACTED_COLUMNS
from clickintent.serve.batcher import InferenceQueue
from clickintent.serve.clean import Cleaned, UnparseableUrl, clean_sessions
from clickintent.serve.live import LiveSessions
from clickintent.serve.metrics import Metrics
from clickintent.serve.model import Scored, ServingModel
from clickintent.serve.schemas import Event, LabelScore, WeighedEvent
from clickintent.serve.settings import Settings

log = logging.getLogger(__name__)

INLINE_CHARS = 8192  # text a request may have to be cleaned on the event loop (worst case ~6 ms of CPU)
CLEAN_PROCESSES = 1


def _cleaner_pool() -> ProcessPoolExecutor:
    # spawned, not forked: the parent runs threads (inference), and a fork would copy torch's state
    return ProcessPoolExecutor(CLEAN_PROCESSES, mp_context=multiprocessing.get_context("spawn"))


class Service:
    def __init__(self, settings: Settings, model: ServingModel | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.queue = InferenceQueue(settings.max_rows, self.metrics.observe_inference)
        self.model: ServingModel | None = model
        self.live: LiveSessions | None = None
        self._reload_lock: asyncio.Lock | None = None
        self._cleaners = _cleaner_pool()

    def _load(self, previous: ServingModel | None = None) -> ServingModel:
        s = self.settings
        text = previous.featurizer.text if previous is not None else None
        return ServingModel.load(s.bundle, s.engine, s.text_cache, s.threads, text=text)

    def start(self) -> None:
        """Load the bundle (unless given), start the inference thread and the live-session store."""
        import torch

        torch.set_num_threads(self.settings.threads)
        if self.model is None:
            self.model = self._load()
        s = self.settings
        self.live = LiveSessions(
            max_sessions=s.live_max_sessions, max_bytes=s.live_max_bytes, ttl=s.live_ttl_seconds,
            gap_minutes=s.gap_minutes, max_duration_hours=s.max_duration_hours, max_events=s.max_events,
            keep=self.model.max_events,
        )  # fmt: skip
        self.queue.start()
        self._publish(self.model)

    def stop(self) -> None:
        self.queue.stop()
        # Waits for the cleaner process to exit (it is idle, or its pending work is cancelled): with
        # wait=False the spawned worker and its resource tracker outlived the server.
        self._cleaners.shutdown(wait=True, cancel_futures=True)

    @property
    def ready(self) -> bool:
        return self.model is not None and self.live is not None and self.queue.alive

    def _publish(self, m: ServingModel) -> None:
        self.metrics.set_model(m.bundle_version, m.model_version, m.taxonomy_version, m.engine.name)

    async def reload(self) -> tuple[ServingModel, ServingModel, float]:
        """(old model, new model, seconds). Raises what loading raised; the old model then keeps serving."""
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        async with self._reload_lock:
            old = self.model
            assert old is not None, "reload before start"
            t0 = time.perf_counter()
            try:
                new = await asyncio.to_thread(self._load, old)
            except Exception:
                self.metrics.reloads.labels("failed").inc()
                raise
            self.model = new  # one reference swap: requests that already took `old` keep it
            self._publish(new)
            self.metrics.reloads.labels("ok").inc()
            seconds = time.perf_counter() - t0
            log.info("reloaded bundle %s -> %s in %.2fs", old.bundle_version, new.bundle_version, seconds)
            return old, new, seconds

    async def reload_logged(self) -> None:
        """Reload for SIGHUP: errors are logged, not raised."""
        try:
            await self.reload()
        except Exception as exc:
            log.error("reload failed, still serving the previous bundle: %s", exc)

    # -- steps shared by the routes ------------------------------------------------------------------

    async def clean(self, *sessions: Sequence[Event]) -> list[Cleaned]:
        """Each session's redacted, time-ordered events and their request indexes (clean.clean_sessions),
        counted in metrics; in a worker process when the request holds much text (see the module doc)."""
        chars = sum(len(v) for events in sessions for e in events for c in REDACTED_COLUMNS if (v := getattr(e, c)))
        try:
            if chars <= INLINE_CHARS:
                out, counts = clean_sessions(sessions)
            else:
                out, counts = await self._clean_elsewhere(sessions)
        except UnparseableUrl as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        for kind, n in counts.items():
            self.metrics.redactions.labels(kind).inc(n)
        return out

    async def _clean_elsewhere(self, sessions: Sequence[Sequence[Event]]) -> tuple[list[Cleaned], Counter[str]]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._cleaners, clean_sessions, sessions)
        except BrokenProcessPool:  # the worker died: a new pool, and one more try
            log.error("the redaction worker process died; starting a new one")
            self._cleaners.shutdown(wait=False, cancel_futures=True)
            self._cleaners = _cleaner_pool()
            return await loop.run_in_executor(self._cleaners, clean_sessions, sessions)

    def intent_fields(
        self,
        model: ServingModel,
        scored: Scored,
        rows: Sequence[dict[str, Any]],
        index: Sequence[int] | None = None,
        *,
        include_embedding: bool = False,
    ) -> dict[str, Any]:
        """The `schemas.Intent` fields of a scored session; `index[i]` is what row i is called in the answer."""
        label_id, name, category = model.label_info[scored.label]
        out: dict[str, Any] = {
            "intent": label_id,
            "name": name,
            "category": category,
            "confidence": float(scored.probs.max()),
            "top": [
                LabelScore(id=i, name=n, category=c, probability=p) for i, n, c, p in model.top_labels(scored.probs)
            ],
            "embedding": scored.embedding.tolist() if include_embedding else None,
        }
        if scored.weights is not None:
            k = min(self.settings.top_events, len(scored.weights))
            best = np.argsort(-scored.weights, kind="stable")[:k]
            events = []
            for j in best:
                r = scored.kept_from + int(j)
                idx = index[r] if index is not None else r
                row = rows[r]
                events.append(
                    WeighedEvent(
                        index=idx, event_type=row["event_type"], page=row["page"], weight=float(scored.weights[j])
                    )
                )
            out["events"] = events
        return out

    def versions(self, model: ServingModel) -> dict[str, Any]:
        return {
            "bundle_version": model.bundle_version,
            "model_version": model.model_version,
            "taxonomy_version": model.taxonomy_version,
        }
