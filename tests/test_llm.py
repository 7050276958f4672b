"""Unit tests for the LLM layer: cache, retries, budget, validation, and the OpenAI backend over real HTTP
against a scripted stdlib server on 127.0.0.1 (no model)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from clickintent.llm import (
    BudgetExceeded,
    Cache,
    Completion,
    LLMError,
    MalformedOutput,
    MissingExtra,
    Request,
    StepFailed,
    TransientError,
    make_backend,
)
from clickintent.llm.base import choice_grammar
from clickintent.llm.fake import FakeBackend
from clickintent.llm.openai import OpenAIBackend


def echo(request: Request) -> str:
    return "answer to " + request.prompt


def test_cache_makes_a_rerun_free(tmp_path: Path) -> None:
    reqs = [Request(f"p{i}") for i in range(5)]
    first = FakeBackend(echo, cache=Cache(tmp_path / "c.sqlite"))
    out1 = first.run(reqs, "step")
    assert [c.text for c in out1] == [f"answer to p{i}" for i in range(5)]
    assert first.calls == 5 and first.usage["step"].cache_hits == 0

    again = FakeBackend(echo, cache=Cache(tmp_path / "c.sqlite"))  # a new process, the same file
    out2 = again.run(reqs, "step")
    assert again.calls == 0 and again.usage["step"].cache_hits == 5
    assert [c.text for c in out2] == [c.text for c in out1] and all(c.cached for c in out2)
    assert again.cache is not None and again.cache.stats()["hits"] == 5


def test_cache_key_covers_backend_model_parameters_and_prompt() -> None:
    base = Cache.key("local", "m", Request("p").params(), "p")
    assert base == Cache.key("local", "m", Request("p").params(), "p")
    assert base != Cache.key("openai", "m", Request("p").params(), "p")
    assert base != Cache.key("local", "m2", Request("p").params(), "p")
    assert base != Cache.key("local", "m", Request("p", temperature=0.5).params(), "p")
    assert base != Cache.key("local", "m", Request("p").params(), "q")


def test_failure_names_the_step_and_progress_and_a_rerun_resumes(tmp_path: Path) -> None:
    cache_path = tmp_path / "c.sqlite"
    broken = {"p3"}

    def flaky(request: Request) -> str:
        if request.prompt in broken:
            raise TransientError("connection refused")
        return echo(request)

    llm = FakeBackend(flaky, cache=Cache(cache_path), retries=2)
    with pytest.raises(StepFailed) as err:
        llm.run([Request(f"p{i}") for i in range(6)], "summaries")
    msg = str(err.value)
    assert "'summaries'" in msg and "3/6" in msg and "connection refused" in msg
    assert llm.calls == 3 + 3  # three answered, then p3 tried 1 + 2 retries

    broken.clear()  # the server is back
    resumed = FakeBackend(flaky, cache=Cache(cache_path))
    resumed.run([Request(f"p{i}") for i in range(6)], "summaries")
    assert resumed.calls == 3 and resumed.usage["summaries"].cache_hits == 3


def test_retries_back_off_exponentially(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    fails = iter([True, True, False])

    def answer(request: Request) -> str:
        if next(fails):
            raise TransientError("HTTP 503")
        return "ok"

    llm = FakeBackend(answer, backoff=1.0, retries=3)
    assert llm.run_one(Request("p"), "s").text == "ok"
    assert llm.calls == 3 and llm.usage["s"].retries == 2
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0


def test_choices_are_validated_and_a_bad_answer_is_resampled() -> None:
    answers = iter(["fraud", " Mortgage "])
    llm = FakeBackend(lambda r: next(answers), retries=2)
    c = llm.run_one(Request("p", choices=("Mortgage", "Savings")), "labels")
    assert c.text == "Mortgage"
    retried = llm.seen[1]
    assert retried.temperature > 0 and retried.seed != 0  # a deterministic model must be able to differ

    stubborn = FakeBackend(lambda r: "fraud", retries=1)
    with pytest.raises(StepFailed, match="not one of the 2 choices"):
        stubborn.run_one(Request("p", choices=("Mortgage", "Savings")), "labels")


def test_invalid_answers_are_never_cached(tmp_path: Path) -> None:
    llm = FakeBackend(lambda r: "not json", cache=Cache(tmp_path / "c.sqlite"), retries=0)
    with pytest.raises(StepFailed):
        llm.run_one(Request("p", json_schema="{}"), "s")
    assert llm.cache is not None and len(llm.cache) == 0


def test_step_check_rejects_answers() -> None:
    def check(request: Request, completion: Completion) -> None:
        if "bad" in completion.text:
            raise MalformedOutput("bad answer")

    answers = iter(["bad", "good"])
    llm = FakeBackend(lambda r: next(answers), retries=1)
    assert llm.run_one(Request("p"), "s", check=check).text == "good"


def test_call_budget_stops_and_keeps_what_was_paid_for(tmp_path: Path) -> None:
    llm = FakeBackend(echo, cache=Cache(tmp_path / "c.sqlite"), max_calls=2)
    with pytest.raises(StepFailed) as err:
        llm.run([Request(f"p{i}") for i in range(4)], "labels")
    assert isinstance(err.value.cause, BudgetExceeded) and "2/4" in str(err.value)
    assert llm.cache is not None and len(llm.cache) == 2


def test_concurrent_runs_keep_request_order() -> None:
    def slow(request: Request) -> str:
        time.sleep(0.01 * (5 - int(request.prompt)))
        return request.prompt

    llm = FakeBackend(slow, concurrency=4)
    assert [c.text for c in llm.run([Request(str(i)) for i in range(5)], "s")] == [str(i) for i in range(5)]
    assert llm.usage["s"].tokens > 0


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import fails as if not installed
    llm = make_backend("local", model_path=tmp_path / "x.gguf", progress=False)
    with pytest.raises(MissingExtra, match=r"pip install 'clickintent\[llm-local\]'"):
        llm.run_one(Request("p"), "s")


def test_choice_grammar_quotes_every_choice() -> None:
    g = choice_grammar(['Card "PIN"', "Other"])
    assert g == 'root ::= " "? ("Card \\"PIN\\"" | "Other")\n'


# -- the OpenAI backend over HTTP ---------------------------------------------------------------


Script = Callable[[str, dict[str, Any]], tuple[int, Any]]


@pytest.fixture
def server() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]], list[Script]]]:
    """A scripted OpenAI-compatible server: each request pops the next script (the last one repeats)."""
    seen: list[tuple[str, dict[str, Any]]] = []
    scripts: list[Script] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, {**body, "_auth": self.headers.get("Authorization")}))
            script = scripts.pop(0) if len(scripts) > 1 else scripts[0]
            status, payload = script(self.path, body)
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout test)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", seen, scripts
    httpd.shutdown()
    httpd.server_close()


def completion_payload(text: str, lps: list[float] | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"text": text, "index": 0}
    if lps is not None:
        choice["logprobs"] = {"token_logprobs": lps, "tokens": ["x"] * len(lps)}
    return {"choices": [choice], "usage": {"prompt_tokens": 7, "completion_tokens": len(lps or [1])}}


def test_openai_completions_retries_5xx_and_malformed_then_answers(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen, scripts = server
    monkeypatch.setenv("CI_TEST_KEY", "sk-test")
    scripts += [
        lambda p, b: (503, {"error": "loading"}),
        lambda p, b: (200, b"<html>proxy error</html>"),
        lambda p, b: (200, completion_payload(" Savings", [-0.2, -0.1])),
    ]
    llm = OpenAIBackend(url, "gemma", api_key_env="CI_TEST_KEY", backoff=0.0, progress=False)
    c = llm.run_one(Request("Label:", choices=("Mortgage", "Savings")), "labels")
    assert c.text == "Savings" and c.token_logprobs == [-0.2, -0.1] and c.prompt_tokens == 7
    assert llm.calls == 3
    path, body = seen[-1]
    assert path == "/v1/completions" and body["logprobs"] == 1
    assert body["grammar"] == choice_grammar(("Mortgage", "Savings"))
    assert body["_auth"] == "Bearer sk-test"


def test_openai_chat_json_schema_choice(server: Any) -> None:
    url, seen, scripts = server
    pieces = [('{"', 0.0), ("choice", 0.0), ('":"', 0.0), ("Sav", -0.3), ("ings", -0.1), ('"}', 0.0)]
    content = [{"token": t, "logprob": lp} for t, lp in pieces]
    scripts.append(
        lambda p, b: (
            200,
            {"choices": [{"message": {"content": '{"choice":"Savings"}'}, "logprobs": {"content": content}}]},
        )
    )
    llm = OpenAIBackend(url, "m", endpoint="chat", api_key_env=None, progress=False)
    c = llm.run_one(Request("which?", system="be brief", choices=("Mortgage", "Savings")), "labels")
    assert c.text == "Savings" and c.token_logprobs == [-0.3, -0.1]
    _, body = seen[-1]
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert body["response_format"]["json_schema"]["schema"]["properties"]["choice"]["enum"] == [
        "Mortgage",
        "Savings",
    ]
    assert body["_auth"] is None


def test_openai_client_error_is_not_retried(server: Any) -> None:
    url, _, scripts = server
    scripts.append(lambda p, b: (401, {"error": "bad key"}))
    llm = OpenAIBackend(url, "m", backoff=0.0, progress=False)
    with pytest.raises(StepFailed, match="HTTP 401"):
        llm.run_one(Request("p"), "summaries")
    assert llm.calls == 1


def test_openai_timeout_and_dead_server_are_retried_then_reported(server: Any) -> None:
    url, _, scripts = server
    scripts.append(lambda p, b: (time.sleep(0.5), (200, completion_payload("late")))[1])
    slow = OpenAIBackend(url, "m", timeout=0.1, retries=1, backoff=0.0, progress=False)
    with pytest.raises(StepFailed, match=r"did not answer within|timed out"):
        slow.run_one(Request("p"), "summaries")
    assert slow.calls == 2

    dead = OpenAIBackend("http://127.0.0.1:9/v1", "m", retries=1, backoff=0.0, progress=False)
    with pytest.raises(StepFailed, match=r"'cluster names' failed after 0/1.*cannot reach"):
        dead.run_one(Request("p"), "cluster names")


def test_make_backend_rejects_what_it_does_not_know() -> None:
    with pytest.raises(LLMError, match="unknown LLM backend"):
        make_backend("gpt-by-name")
    with pytest.raises(LLMError, match="base URL"):
        make_backend("openai")


def test_run_resampled_reasks_rejected_answers_with_sampling() -> None:
    def answer(request: Request) -> str:
        return "copied" if request.temperature == 0 else f"fresh {request.seed}"

    llm = FakeBackend(answer)
    out, ok = llm.run_resampled([Request("a"), Request("b")], "s", lambda r, c: c.text != "copied")
    assert ok == [True, True] and all(c.text.startswith("fresh") for c in out)
    assert set(llm.usage) == {"s", "s (resample 1)"}

    stuck = FakeBackend(lambda r: "copied")
    out, ok = stuck.run_resampled([Request("a")], "s", lambda r, c: False, tries=2)
    assert ok == [False] and out[0].text == "copied" and stuck.calls == 3
