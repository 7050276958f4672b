"""One inference thread per process; requests that arrive while it is busy share its next encoder call.

The event loop parses and validates requests and never runs the model: `InferenceQueue.score` hands the
sessions to the thread and awaits a future. The thread takes the next job, adds every job already waiting
(up to `max_rows` encoder rows), and runs each model's share in one `ServingModel.encode` call. A job names
the model it was admitted with, so after a reload the jobs already queued still finish on the old model
(and a batch never mixes models). One thread also keeps the featurizer's caches and the text cache to one
writer. What it leaves out: priorities, deadlines, cancelling work whose client has gone.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clickintent.serve.model import Scored, ServingModel

log = logging.getLogger(__name__)


@dataclass
class _Job:
    model: ServingModel
    sessions: Sequence[Sequence[dict[str, Any]]]
    explain: Sequence[bool]
    future: asyncio.Future[list[Scored]]
    loop: asyncio.AbstractEventLoop
    rows: int = field(init=False)

    def __post_init__(self) -> None:
        self.rows = sum(1 + (len(s) if e else 0) for s, e in zip(self.sessions, self.explain, strict=True))


def _deliver(future: asyncio.Future[list[Scored]], result: list[Scored] | BaseException) -> None:
    if future.done():  # the awaiting request was cancelled (client gone)
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class InferenceQueue:
    """Runs `ServingModel.encode` on one thread, batching concurrent jobs. `observe(rows, seconds)` is told
    about every encoder call (for metrics)."""

    def __init__(self, max_rows: int = 256, observe: Callable[[int, float], None] | None = None) -> None:
        self.max_rows = max_rows
        self.observe = observe
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="clickintent-inference", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the queued jobs, then end the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    async def score(
        self, model: ServingModel, sessions: Sequence[Sequence[dict[str, Any]]], explain: Sequence[bool]
    ) -> list[Scored]:
        if not self.alive:
            raise RuntimeError("the inference thread is not running")
        loop = asyncio.get_running_loop()
        job = _Job(model, sessions, explain, loop.create_future(), loop)
        self._queue.put(job)
        return await job.future

    def _run(self) -> None:
        carry: _Job | None = None  # a job taken from the queue that must start the next call
        stopping = False
        while True:
            if carry is not None:
                job, carry = carry, None
            elif stopping:
                return
            else:
                got = self._queue.get()
                if got is None:
                    return
                job = got
            jobs, rows = [job], job.rows
            while rows < self.max_rows:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                if nxt.model is not job.model or rows + nxt.rows > self.max_rows:
                    carry = nxt  # another model's job, or too big for this call
                    break
                jobs.append(nxt)
                rows += nxt.rows
            self._encode(jobs, rows)

    def _encode(self, jobs: list[_Job], rows: int) -> None:
        sessions = [s for j in jobs for s in j.sessions]
        explain = [e for j in jobs for e in j.explain]
        t0 = time.perf_counter()
        try:
            scored = jobs[0].model.encode(sessions, explain)
        except Exception as exc:  # never end the thread; only the job that fails gets the error
            if len(jobs) > 1:
                for j in jobs:
                    self._encode([j], j.rows)
                return
            log.error("inference failed: %s", type(exc).__name__)
            jobs[0].loop.call_soon_threadsafe(_deliver, jobs[0].future, exc)
            return
        if self.observe is not None:
            self.observe(rows, time.perf_counter() - t0)
        i = 0
        for j in jobs:
            n = len(j.sessions)
            j.loop.call_soon_threadsafe(_deliver, j.future, scored[i : i + n])
            i += n
