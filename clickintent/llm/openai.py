"""An OpenAI-compatible HTTP backend: vLLM, Ollama, llama.cpp's server, llama_cpp.server, hosted APIs.

Speaks both `/v1/completions` (the one for base models such as the embedded Gemma) and
`/v1/chat/completions`, with the standard library's `urllib` (no HTTP dependency). The API key is read from
an environment variable named by the caller and is sent only as a Bearer header, never logged or cached.

Restricted output, where the server supports it (`constraint`):
- `grammar`: a GBNF grammar in the `grammar` field (llama.cpp server, llama-cpp-python server);
- `guided`: vLLM's `guided_choice` / `guided_json` fields;
- `json_schema`: `response_format={"type": "json_schema", ...}` (chat; OpenAI, vLLM, Ollama);
- `none`: the server is not asked; the answer is still validated by `LLM.run` and retried if invalid.
Token log-probabilities are requested when `Request.logprobs` is set or the request has choices (they give
a label its confidence) and read from either response shape.

Left out: streaming, the Responses API, embeddings endpoints.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any, Literal

from clickintent.llm.base import (
    LLM,
    Completion,
    LLMError,
    MalformedOutput,
    Request,
    TransientError,
    choice_grammar,
)

Endpoint = Literal["completions", "chat"]
Constraint = Literal["grammar", "guided", "json_schema", "none"]

_CHOICE_KEY = "choice"


class OpenAIBackend(LLM):
    """Any OpenAI-compatible server.

    Args:
        base_url: up to and including `/v1`, e.g. `http://127.0.0.1:8000/v1`.
        model: the model name the server knows.
        endpoint: `completions` (base models, few-shot prompts) or `chat` (instruction-tuned models).
        api_key_env: environment variable holding the key; unset or empty sends no Authorization header.
        constraint: how to restrict output (see the module docstring); default `grammar` for completions,
            `json_schema` for chat.
        **options: the `LLM` options (cache, retries, backoff, timeout, max_calls, concurrency, progress).
    """

    name = "openai"
    max_concurrency = 16

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        endpoint: Endpoint = "completions",
        api_key_env: str | None = "OPENAI_API_KEY",
        constraint: Constraint | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.base_url = base_url.rstrip("/")
        self._model = model
        self.endpoint = endpoint
        self.api_key_env = api_key_env
        self.constraint: Constraint = constraint or ("grammar" if endpoint == "completions" else "json_schema")

    @property
    def model(self) -> str:
        # The endpoint and constraint change answers, so they are part of the model in the cache key.
        return f"{self._model}|{self.endpoint}|{self.constraint}"

    def complete(self, request: Request) -> Completion:
        if self.endpoint == "chat":
            data = self._post("/chat/completions", self._chat_body(request))
            return self._parse_chat(request, data)
        data = self._post("/completions", self._completion_body(request))
        return self._parse_completion(data)

    # -- request bodies -------------------------------------------------------------------------

    def _common(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "seed": request.seed,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        return body

    def _completion_body(self, request: Request) -> dict[str, Any]:
        prompt = request.prompt if request.system is None else f"{request.system}\n\n{request.prompt}"
        body = {**self._common(request), "prompt": prompt}
        if request.logprobs or request.choices:
            body["logprobs"] = 1
        if request.choices:
            if self.constraint == "grammar":
                body["grammar"] = choice_grammar(request.choices)
            elif self.constraint == "guided":
                body["guided_choice"] = list(request.choices)
        elif request.json_schema is not None and self.constraint == "guided":
            body["guided_json"] = json.loads(request.json_schema)
        return body

    def _chat_body(self, request: Request) -> dict[str, Any]:
        messages = [] if request.system is None else [{"role": "system", "content": request.system}]
        messages.append({"role": "user", "content": request.prompt})
        body = {**self._common(request), "messages": messages}
        if request.logprobs or request.choices:
            body["logprobs"] = True
        schema: dict[str, Any] | None = None
        if request.choices:
            # Hosted APIs want an object at the root of a strict schema, so the choice is wrapped.
            schema = {
                "type": "object",
                "properties": {_CHOICE_KEY: {"type": "string", "enum": list(request.choices)}},
                "required": [_CHOICE_KEY],
                "additionalProperties": False,
            }
        elif request.json_schema is not None:
            schema = json.loads(request.json_schema)
        if schema is not None:
            if self.constraint == "json_schema":
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": schema, "strict": True},
                }
            elif self.constraint == "guided":
                body["guided_json"] = schema
            elif self.constraint == "grammar" and request.choices:
                body["grammar"] = choice_grammar(request.choices)
        return body

    # -- responses ------------------------------------------------------------------------------

    def _parse_completion(self, data: dict[str, Any]) -> Completion:
        try:
            choice = data["choices"][0]
            text = choice["text"]
            if not isinstance(text, str):
                raise TypeError("text is not a string")
        except (KeyError, IndexError, TypeError) as e:
            raise MalformedOutput(f"unexpected /completions response: {str(data)[:200]}") from e
        lp = choice.get("logprobs") or {}
        token_lps = lp.get("token_logprobs") if isinstance(lp, dict) else None
        return Completion(
            text=text,
            token_logprobs=[float(x) for x in token_lps if x is not None] if token_lps else None,
            **_usage(data),
        )

    def _parse_chat(self, request: Request, data: dict[str, Any]) -> Completion:
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (KeyError, IndexError, TypeError) as e:
            raise MalformedOutput(f"unexpected /chat/completions response: {str(data)[:200]}") from e
        if request.choices and self.constraint in ("json_schema", "guided"):
            try:
                text = json.loads(text)[_CHOICE_KEY]
            except (ValueError, KeyError, TypeError) as e:
                raise MalformedOutput(f"expected a JSON object with a '{_CHOICE_KEY}': {text[:80]!r}") from e
            if not isinstance(text, str):
                raise MalformedOutput("the choice is not a string")
        content = (choice.get("logprobs") or {}).get("content") if isinstance(choice, dict) else None
        token_lps = [float(t["logprob"]) for t in content if "logprob" in t] if content else None
        if token_lps and request.choices and self.constraint in ("json_schema", "guided"):
            # Only the tokens of the choice itself carry the model's decision; the JSON braces are forced.
            token_lps = _choice_token_logprobs(content, text) or token_lps
        return Completion(text=text, token_logprobs=token_lps or None, **_usage(data))

    # -- transport ------------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self.base_url + path
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read()[:300].decode("utf-8", "replace")
            if e.code == 429 or e.code >= 500:
                raise TransientError(f"{url} answered HTTP {e.code}: {detail}") from e
            raise LLMError(f"{url} answered HTTP {e.code}: {detail}") from e
        except urllib.error.URLError as e:
            raise TransientError(f"cannot reach {url}: {e.reason}") from e
        except (TimeoutError, ConnectionError) as e:
            raise TransientError(f"{url} did not answer within {self.timeout:g}s: {e}") from e
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise MalformedOutput(f"{url} answered something that is not JSON: {raw[:120]!r}") from e
        if not isinstance(data, dict):
            raise MalformedOutput(f"{url} answered JSON that is not an object")
        return data


def _usage(data: dict[str, Any]) -> dict[str, Any]:
    usage = data.get("usage") or {}
    return {
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
        "completion_tokens": int(usage.get("completion_tokens") or 0),
    }


def _choice_token_logprobs(content: Any, choice: str) -> list[float] | None:
    """Log-probabilities of the tokens that spell `choice` inside a JSON answer, if they can be found."""
    text, spans = "", []
    for t in content:
        start = len(text)
        text += str(t.get("token", ""))
        spans.append((start, len(text), float(t.get("logprob", 0.0))))
    at = text.find(json.dumps(choice, ensure_ascii=False)[1:-1])
    if at < 0:
        return None
    end = at + len(choice)
    return [lp for s, e, lp in spans if e > at and s < end]
