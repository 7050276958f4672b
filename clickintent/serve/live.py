"""Live sessions: events appended click by click under a server-issued id, cut by the sessionizer's rule.

`LiveSessions.start(events)` keeps a new session under an id it makes (`secrets.token_urlsafe`, 192
random bits) and returns both; `append(id, events)` adds redacted, time-ordered events to the session
kept for an id it issued, and returns its current state, or None for an id it does not hold (never
issued, expired or evicted: the same answer for all three, so a caller cannot learn which ids exist).
Clients never choose ids: a live session holds a visitor's pages, and with one API key shared by all
clients a guessable id (`visitor-42`) let any of them read another's session or force it to cut
(issue 17). The id is the capability: whoever holds it can read and extend that session, no one else.
The rule is clickintent.sessionize's, applied as events arrive: a new session
starts after more than `gap` of inactivity, every `max_duration` from the first event of a visit, and every
`max_events` events; the key then holds the new session (`segment` counts the cuts). An event older than
the latest one is placed in time order and never cuts (the batch sessionizer, which sorts first, could
differ there). Only the last `keep` events are stored (the encoder reads no more), with counts for the
rules.

Memory is bounded three ways: at most `max_sessions` keys, at most `max_bytes` bytes (both evict the
least recently used key), and keys untouched for `ttl` seconds are dropped. Bytes are what CPython holds
(`sys.getsizeof` of each event dict and value, plus a measured overhead per session), so text outside
Latin-1, 2 or 4 bytes a character, counts as much as it costs: counting characters let such text use
2.1x the budget (issue 17). The order of the store is recency, so expiry pops from its front.
Single-threaded by design: the event loop owns it.
"""

from __future__ import annotations

import bisect
import secrets
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

ID_BYTES = 24  # random bytes of a session id (32 URL-safe characters)
SESSION_OVERHEAD = 1200  # bytes of a session beyond its events: LiveSession, deque, id, store entry (tracemalloc)
EVENT_SLOT = 8  # the deque's pointer to an event


def event_bytes(event: dict[str, Any]) -> int:
    """What one stored event costs: its dict and every value it holds (keys are shared constants)."""
    return sys.getsizeof(event) + EVENT_SLOT + sum(sys.getsizeof(v) for v in event.values() if v is not None)


@dataclass
class LiveSession:
    visit_start: int  # µs: first event of the visit (the span rule counts from here)
    span: int  # which max_duration window of the visit the session is in
    start: int  # µs: first event of the session
    last: int  # µs: latest event
    segment: int = 0  # sessions this key had before this one
    n_events: int = 0  # events in the session (only the last `keep` are stored)
    events: deque[dict[str, Any]] = field(default_factory=deque)
    bytes: int = SESSION_OVERHEAD
    touched: float = 0.0  # monotonic seconds of the last append


@dataclass
class LiveStats:
    started: int = 0  # sessions started (first events of a key, and every cut)
    events: int = 0  # events appended
    evicted: int = 0  # keys dropped to stay under max_sessions / max_bytes
    expired: int = 0  # keys dropped after ttl


class LiveSessions:
    """Bounded map key -> LiveSession (see the module doc)."""

    def __init__(
        self,
        *,
        max_sessions: int = 10_000,
        max_bytes: int = 256 << 20,
        ttl: float = 1800.0,
        gap_minutes: float = 30.0,
        max_duration_hours: float = 12.0,
        max_events: int = 512,
        keep: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_sessions = max_sessions
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.gap_us = int(gap_minutes * 60e6)
        self.max_duration_us = int(max_duration_hours * 3600e6)
        self.max_events = max_events
        self.keep = keep
        self.clock = clock
        self.stats = LiveStats()
        self.bytes = 0
        self._sessions: OrderedDict[str, LiveSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, key: str) -> LiveSession | None:
        self.expire()
        return self._sessions.get(key)

    def expire(self) -> None:
        """Drop keys untouched for `ttl` seconds (the oldest are first in the store)."""
        cutoff = self.clock() - self.ttl
        while self._sessions:
            key, oldest = next(iter(self._sessions.items()))
            if oldest.touched > cutoff:
                break
            self._drop(key)
            self.stats.expired += 1

    def _drop(self, key: str) -> None:
        self.bytes -= self._sessions.pop(key).bytes

    def start(self, events: Sequence[dict[str, Any]]) -> tuple[str, LiveSession]:
        """Keep time-ordered events as a new session under a new id; returns (the id, its state)."""
        self.expire()
        key = secrets.token_urlsafe(ID_BYTES)
        return key, self._add_events(key, None, events)[0]

    def append(self, key: str, events: Sequence[dict[str, Any]]) -> tuple[LiveSession, bool] | None:
        """Add time-ordered events to the session of an id `start` issued; returns (its state, whether a new
        session started), or None when no session is kept under `key`."""
        self.expire()
        s = self._sessions.pop(key, None)
        if s is None:
            return None
        self.bytes -= s.bytes
        return self._add_events(key, s, events)

    def _add_events(
        self, key: str, s: LiveSession | None, events: Sequence[dict[str, Any]]
    ) -> tuple[LiveSession, bool]:
        started = False
        for ev in events:
            ts = int(ev["ts"])
            if s is None:
                s = LiveSession(visit_start=ts, span=0, start=ts, last=ts)
                started = True
                self.stats.started += 1
            elif ts > s.last + self.gap_us:  # inactivity: a new visit
                s = self._cut(s, visit_start=ts, span=0, ts=ts)
                started = True
                self.stats.started += 1
            else:
                span = max(ts - s.visit_start, 0) // self.max_duration_us
                if span > s.span or s.n_events >= self.max_events:
                    s = self._cut(s, visit_start=s.visit_start, span=max(span, s.span), ts=ts)
                    started = True
                    self.stats.started += 1
            self._add(s, ev, ts)
        assert s is not None, "append needs at least one event"
        s.touched = self.clock()
        self._sessions[key] = s
        self.bytes += s.bytes
        self.stats.events += len(events)
        while len(self._sessions) > self.max_sessions or (self.bytes > self.max_bytes and len(self._sessions) > 1):
            oldest = next(iter(self._sessions))
            self._drop(oldest)
            self.stats.evicted += 1
        return s, started

    def _cut(self, s: LiveSession, *, visit_start: int, span: int, ts: int) -> LiveSession:
        return LiveSession(visit_start=visit_start, span=span, start=ts, last=ts, segment=s.segment + 1)

    def _add(self, s: LiveSession, ev: dict[str, Any], ts: int) -> None:
        if ts >= s.last or not s.events:
            s.events.append(ev)
        else:  # late: keep time order
            at = bisect.bisect_right([e["ts"] for e in s.events], ts)
            s.events.insert(at, ev)
        s.last = max(s.last, ts)
        s.start = min(s.start, ts)
        s.n_events += 1
        s.bytes += event_bytes(ev)
        while len(s.events) > self.keep:
            s.bytes -= event_bytes(s.events.popleft())
