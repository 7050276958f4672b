"""The LLM backend interface: one abstract method, and every convenience built on top of it.

A backend implements `complete(request) -> Completion` for a single request and nothing else (the
simonw/llm habit, STYLE.md item 2). `LLM.run` adds what every pipeline step needs, in one place:

- a persistent cache (`clickintent.llm.cache.Cache`, SQLite) keyed by (backend, model, parameters,
  prompt): a step that stopped half-way resumes where it stopped and re-running it costs no calls;
- retries with exponential backoff and jitter for transient failures (dead server, timeout, HTTP 429/5xx,
  malformed output); a malformed answer is retried *with sampling* so a deterministic model can answer
  differently, and only validated answers are cached;
- validation of restricted output (`Request.choices`: the text must be exactly one of them;
  `Request.json_schema`: the text must parse as JSON) plus an optional step-specific check;
- a call budget (`max_calls`, counting every attempt that reached the backend);
- batching: many requests per step, run on a thread pool where the backend allows it;
- a tqdm progress bar per step with calls made, cache hits, tokens and time, and per-step `Usage`.

A failure that survives the retries raises `StepFailed`, which names the step and how far it got; every
answer received before it is already in the cache.

Left out: streaming, tool calls, multi-turn chat (a request is one prompt, with an optional system text).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tqdm.auto import tqdm

from clickintent.llm.cache import Cache

log = logging.getLogger(__name__)


class LLMError(RuntimeError):
    """A failure that retrying will not fix (bad request, authentication, a model that cannot load)."""


class TransientError(LLMError):
    """A failure worth retrying: connection refused, timeout, HTTP 429 or 5xx."""


class MalformedOutput(TransientError):
    """The backend answered, but the answer failed validation (not one of the choices, not JSON, ...)."""


class BudgetExceeded(LLMError):
    """The call budget (`max_calls`) is spent."""


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message carries the exact pip command."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; it comes with the `{extra}` extra: pip install 'clickintent[{extra}]'"
        )


class StepFailed(LLMError):
    """A pipeline step gave up. Answers received before the failure are cached: re-running resumes."""

    def __init__(self, step: str, done: int, total: int, cause: BaseException) -> None:
        self.step, self.done, self.total, self.cause = step, done, total, cause
        super().__init__(
            f"LLM step '{step}' failed after {done}/{total} requests were answered "
            f"(those are cached; re-running the step resumes from there): {type(cause).__name__}: {cause}"
        )


@dataclass(frozen=True)
class Request:
    """One prompt and how to answer it. Frozen and JSON-able: its fields are the cache key's parameters."""

    prompt: str
    system: str | None = None  # chat endpoints send it as the system message; completion ones prepend it
    max_tokens: int = 64
    temperature: float = 0.0  # 0 = greedy, so a cached answer is the answer
    stop: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()  # non-empty: the answer must be exactly one of these strings
    json_schema: str | None = None  # JSON text of a schema the answer must follow (where supported)
    logprobs: bool = False  # ask for the log-probability of each generated token
    seed: int = 0

    def params(self) -> dict[str, Any]:
        """Every field except the prompt, for the cache key."""
        d = dataclasses.asdict(self)
        d.pop("prompt")
        d["stop"], d["choices"] = list(self.stop), list(self.choices)
        return d


@dataclass
class Completion:
    """What a backend returns for one request."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    token_logprobs: list[float] | None = None  # one per generated token, where the backend returns them
    choice_logprobs: dict[str, float] | None = None  # log-likelihood of each choice, for scoring backends
    cached: bool = False  # set by `LLM.run`, never stored

    @property
    def logprob(self) -> float | None:
        """Log-probability of the answer: its choice score, else the sum of its token log-probabilities."""
        if self.choice_logprobs is not None and self.text in self.choice_logprobs:
            return self.choice_logprobs[self.text]
        if self.token_logprobs:
            return float(sum(self.token_logprobs))
        return None

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("cached")
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Completion:
        return cls(
            text=str(d["text"]),
            prompt_tokens=int(d.get("prompt_tokens", 0)),
            completion_tokens=int(d.get("completion_tokens", 0)),
            token_logprobs=d.get("token_logprobs"),
            choice_logprobs=d.get("choice_logprobs"),
        )


@dataclass
class Usage:
    """What one step cost. `calls` counts every attempt that reached the backend (retries included)."""

    requests: int = 0
    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "tokens": self.tokens}


Check = Callable[[Request, Completion], None]


def choice_grammar(choices: Sequence[str]) -> str:
    """A GBNF grammar (llama.cpp) whose only sentences are the choices, after an optional space."""
    alts = " | ".join(json.dumps(c, ensure_ascii=False) for c in choices)
    return f'root ::= " "? ({alts})\n'


def _validate(request: Request, completion: Completion) -> None:
    """The checks every restricted request gets, whatever the backend claims to have enforced."""
    if request.choices:
        text = completion.text.strip()
        if text not in request.choices:
            raise MalformedOutput(f"answer {text[:80]!r} is not one of the {len(request.choices)} choices")
        completion.text = text
    if request.json_schema is not None:
        try:
            json.loads(completion.text)
        except ValueError as e:
            raise MalformedOutput(f"answer is not valid JSON: {e}") from e


@dataclass
class _StepState:
    usage: Usage = field(default_factory=Usage)
    lock: threading.Lock = field(default_factory=threading.Lock)


class LLM(ABC):
    """A language-model backend. Subclasses implement `complete`; call `run` (or `run_one`) to use one.

    Args:
        cache: where answers persist; None keeps nothing between runs.
        retries: attempts after the first for a transient failure.
        backoff: seconds before the first retry; doubles each time (with jitter), capped at `max_backoff`.
        timeout: seconds one HTTP call may take (backends without I/O ignore it).
        max_calls: call budget for the lifetime of this object (None: unlimited).
        concurrency: requests in flight at once (capped by the backend's `max_concurrency`).
        progress: show a tqdm bar per step.
    """

    name: ClassVar[str] = "llm"  # the backend part of the cache key
    max_concurrency: ClassVar[int] = 1  # in-process models are not thread-safe

    def __init__(
        self,
        *,
        cache: Cache | None = None,
        retries: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        timeout: float = 120.0,
        max_calls: int | None = None,
        concurrency: int = 1,
        progress: bool = True,
    ) -> None:
        self.cache = cache
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.max_calls = max_calls
        self.concurrency = concurrency
        self.progress = progress
        self.usage: dict[str, Usage] = {}
        self._calls = 0
        self._calls_lock = threading.Lock()

    @property
    def model(self) -> str:
        """The model part of the cache key; subclasses that know their model override it."""
        return "default"

    @abstractmethod
    def complete(self, request: Request) -> Completion:
        """Answer one request. Raise `TransientError` for what a retry may fix, `LLMError` otherwise."""

    # -- everything below is built on `complete` -------------------------------------------------

    @property
    def calls(self) -> int:
        """Calls made by this object so far (every attempt that reached the backend)."""
        return self._calls

    def total_usage(self) -> Usage:
        total = Usage()
        for u in self.usage.values():
            total.add(u)
        return total

    def run_one(self, request: Request, step: str, check: Check | None = None) -> Completion:
        """`run` for a single request, without a progress bar."""
        return self.run([request], step, check=check, progress=False)[0]

    def run(
        self,
        requests: Sequence[Request],
        step: str,
        check: Check | None = None,
        progress: bool | None = None,
    ) -> list[Completion]:
        """Answer every request, in order: cached answers first, then the backend for the rest.

        `check(request, completion)` may raise `MalformedOutput` to reject an answer (it is then retried
        and never cached). Raises `StepFailed` when a request cannot be answered; answers received so
        far stay in the cache.
        """
        state = _StepState()
        start = time.perf_counter()
        results: list[Completion | None] = [None] * len(requests)
        keys = [self._key(r) for r in requests]
        missing: list[int] = []
        for i, (req, key) in enumerate(zip(requests, keys, strict=True)):
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                c = Completion.from_json(hit)
                c.cached = True
                try:
                    self._check(req, c, check)
                except MalformedOutput:
                    hit = None  # an answer cached under older validation rules: ask again
                else:
                    results[i] = c
                    state.usage.cache_hits += 1
                    state.usage.prompt_tokens += c.prompt_tokens
                    state.usage.completion_tokens += c.completion_tokens
            if hit is None:
                missing.append(i)

        show = self.progress if progress is None else progress
        bar = tqdm(total=len(requests), desc=step, unit="req", disable=not show, dynamic_ncols=True)
        bar.update(len(requests) - len(missing))
        done = len(requests) - len(missing)

        def postfix() -> None:
            u = state.usage
            bar.set_postfix(calls=u.calls, hits=u.cache_hits, tokens=u.tokens, refresh=False)

        postfix()
        workers = max(1, min(self.concurrency, self.max_concurrency, len(missing)))
        try:
            if workers == 1:
                for i in missing:
                    results[i] = self._answer(requests[i], keys[i], check, state)
                    done += 1
                    postfix()
                    bar.update(1)
            else:
                with cf.ThreadPoolExecutor(max_workers=workers) as pool:
                    futures = {pool.submit(self._answer, requests[i], keys[i], check, state): i for i in missing}
                    try:
                        for fut in cf.as_completed(futures):
                            results[futures[fut]] = fut.result()
                            done += 1
                            postfix()
                            bar.update(1)
                    except BaseException:
                        for f in futures:
                            f.cancel()
                        raise
        except (LLMError, OSError) as e:
            raise StepFailed(step, done, len(requests), e) from e
        finally:
            bar.close()
            state.usage.requests = len(requests)
            state.usage.seconds = time.perf_counter() - start
            self.usage.setdefault(step, Usage()).add(state.usage)
            u = state.usage
            log.info(
                "%s: %d requests, %d calls, %d cache hits, %d retries, %d tokens, %.1fs",
                step, u.requests, u.calls, u.cache_hits, u.retries, u.tokens, u.seconds,
            )  # fmt: skip
        return [r for r in results if r is not None]

    def run_resampled(
        self,
        requests: Sequence[Request],
        step: str,
        accept: Callable[[Request, Completion], bool],
        check: Check | None = None,
        tries: int = 3,
    ) -> tuple[list[Completion], list[bool]]:
        """`run`, then up to `tries` sampled re-asks (new seeds, temperature 0.7) for answers that are
        well-formed but that `accept` rejects on quality (e.g. copied from the prompt's examples).

        Returns every request's best answer and whether it was accepted; unlike a malformed answer, an
        unaccepted one does not fail the step, so the caller decides what to do with it. Each re-ask is
        its own cached request, so a re-run costs nothing.
        """
        out = self.run(requests, step, check=check)
        ok = [accept(r, c) for r, c in zip(requests, out, strict=True)]
        for t in range(1, tries + 1):
            bad = [i for i, good in enumerate(ok) if not good]
            if not bad:
                break
            alt = [
                dataclasses.replace(requests[i], temperature=max(requests[i].temperature, 0.7), seed=1000 * t + i)
                for i in bad
            ]
            for i, req, c in zip(bad, alt, self.run(alt, f"{step} (resample {t})", check=check), strict=True):
                if accept(req, c):
                    out[i], ok[i] = c, True
        return out, ok

    def _key(self, request: Request) -> str:
        return Cache.key(self.name, self.model, request.params(), request.prompt)

    def _check(self, request: Request, completion: Completion, check: Check | None) -> None:
        _validate(request, completion)
        if check is not None:
            check(request, completion)

    def _answer(self, request: Request, key: str, check: Check | None, state: _StepState) -> Completion:
        """One request through the backend with retries; the validated answer goes to the cache."""
        attempt_req = request
        for attempt in range(self.retries + 1):
            with self._calls_lock:
                if self.max_calls is not None and self._calls >= self.max_calls:
                    raise BudgetExceeded(f"call budget of {self.max_calls} calls is spent")
                self._calls += 1
            with state.lock:
                state.usage.calls += 1
                state.usage.retries += attempt > 0
            try:
                c = self.complete(attempt_req)
                with state.lock:
                    state.usage.prompt_tokens += c.prompt_tokens
                    state.usage.completion_tokens += c.completion_tokens
                self._check(request, c, check)
            except MalformedOutput as e:
                err: TransientError = e
                # A deterministic model repeats itself: sample on the retry so it can answer differently.
                attempt_req = dataclasses.replace(
                    request, temperature=max(request.temperature, 0.7), seed=request.seed + attempt + 1
                )
            except TransientError as e:
                err = e
            else:
                if self.cache is not None:
                    self.cache.put(key, self.name, self.model, c.to_json())
                return c
            if attempt < self.retries:
                delay = min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)
                log.warning("retrying in %.1fs after: %s", delay, err)
                time.sleep(delay)
        raise err
