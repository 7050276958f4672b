"""Every use of llama-cpp-python's private internals, in one place, gated on the version they were written for.

`LocalBackend` (llm/local.py) scores choices from raw logits, keeps several KV-cache sequences in one
context and reuses the cache across calls. llama-cpp-python's public `Llama` API has no call for any of
that, so it reaches under it: the context (`Llama._ctx`), its scratch batch (`Llama._batch`), the
"logits are stale" flag (`Llama._requires_eval`), `_internals.LlamaBatch`, the model kind flags
(`_is_recurrent`, `_is_hybrid`), the token history (`input_ids`, `n_tokens`, public but internal state),
and the library's default-parameter functions, wrapped while the constructor runs. These change between
llama-cpp-python releases without notice, so they live here and nowhere else, and `check_version` refuses
any release outside `SUPPORTED` with one clear line instead of a wrong score or a crash deep in a decode.

Upgrading llama-cpp-python: read this module against the new release's `llama.py` and `_internals.py`,
run tests/test_llm_local_batch.py and tests/test_llm_integration.py (the real model), then widen
`SUPPORTED`. Nothing else in clickintent touches these names.

Left out: a fallback to the public API (it has no per-token logits without `logits_all=True`, which costs
n_ctx x n_vocab floats, and no parallel sequences), GPU-specific internals.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from clickintent.llm.base import LLMError

# llama-cpp-python releases this module was checked against: lowest included, highest excluded.
SUPPORTED = ((0, 3, 36), (0, 3, 37))
_PARAMS_LOCK = threading.Lock()


def version_tuple(version: str) -> tuple[int, ...]:
    """"0.3.36" -> (0, 3, 36); a suffix after the numbers ("0.3.36.dev1", "0.3.36+cu121") is ignored."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    if match is None:
        raise LLMError(f"cannot read the llama-cpp-python version {version!r}")
    return tuple(int(p) for p in match.group(0).split("."))


def check_version(version: str | None = None) -> None:
    """Raise `LLMError` unless llama-cpp-python's version (default: the installed one) is in `SUPPORTED`."""
    if version is None:
        import llama_cpp

        version = str(llama_cpp.__version__)
    low, high = SUPPORTED
    if not low <= version_tuple(version) < high:
        want = f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"
        raise LLMError(
            f"llama-cpp-python {version} is installed, but the local backend uses its internals and was checked "
            f"against {want}: pip install 'llama-cpp-python[server]{want}' (or check "
            "clickintent/llm/llama_internals.py against the new release and widen SUPPORTED)"
        )


def new_llama(llama_cls: Any, model: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> Any:
    """`Llama(**kwargs)` with llama.cpp model and context parameters it has no arguments for (`model`,
    `context`: field -> value), set by wrapping llama-cpp-python's default-parameter functions while the
    constructor runs."""
    import llama_cpp.llama as llama_module

    lib = llama_module.llama_cpp
    model_defaults, context_defaults = lib.llama_model_default_params, lib.llama_context_default_params

    def model_params() -> Any:
        params = model_defaults()
        for k, v in model.items():
            setattr(params, k, v)
        return params

    def context_params() -> Any:
        params = context_defaults()
        for k, v in context.items():
            setattr(params, k, v)
        return params

    with _PARAMS_LOCK:
        lib.llama_model_default_params, lib.llama_context_default_params = model_params, context_params
        try:
            return llama_cls(**kwargs)
        finally:
            lib.llama_model_default_params, lib.llama_context_default_params = model_defaults, context_defaults


def sequence_batch(llm: Any) -> Any:
    """A llama_batch of `n_batch` tokens with room for as many sequence ids per token as the context has
    parallel sequences; None where it has one, or its KV cache cannot copy sequences cheaply."""
    import llama_cpp
    from llama_cpp import _internals

    n_seq = int(llama_cpp.llama_n_seq_max(llm.ctx))
    recurrent = getattr(llm, "_is_recurrent", True) or getattr(llm, "_is_hybrid", True)
    if n_seq < 3 or recurrent or not llm.context_params.kv_unified:  # prompt, a branch, scratch
        return None
    return _internals.LlamaBatch(n_tokens=llm.n_batch, embd=0, n_seq_max=n_seq, verbose=False)


def batch_seq_max(batch: Any) -> int:
    """How many sequence ids one token of a `sequence_batch` can carry."""
    return int(batch.n_seq_max)


def clear_cache(llm: Any) -> None:
    """Empty the KV cache and forget the token history (after a failed decode)."""
    llm._ctx.kv_cache_clear()
    llm.reset()


def cached_prefix(llm: Any, prompt: Sequence[int]) -> int:
    """How many leading tokens of prompt[:-1] the KV cache (sequence 0) already holds."""
    m = min(int(llm.n_tokens), len(prompt) - 1)
    if m <= 0:
        return 0
    diff = np.flatnonzero(llm.input_ids[:m] != np.asarray(prompt[:m], dtype=llm.input_ids.dtype))
    return int(diff[0]) if diff.size else m


def keep_prefix(llm: Any, prompt: Sequence[int]) -> int:
    """Cut the KV cache back to the longest prefix of prompt[:-1] it holds; that prefix's length."""
    cached = cached_prefix(llm, prompt)
    if not llm._ctx.kv_cache_seq_rm(-1, cached, -1):
        llm.reset()
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        cached = 0
    llm.n_tokens = cached
    return cached


def truncate(llm: Any, n: int) -> None:
    """Drop every cached position from `n` on, in every sequence, and set the token history to `n`."""
    llm._ctx.kv_cache_seq_rm(-1, n, -1)
    llm.n_tokens = n


def copy_sequence(llm: Any, src: int, dst: int) -> None:
    """Tag every cell of sequence `src` with `dst` too (with a unified KV cache nothing is copied)."""
    llm._ctx.kv_cache_seq_cp(src, dst, -1, -1)


def keep_sequence(llm: Any, seq: int) -> None:
    """Drop every KV-cache sequence but `seq`."""
    import llama_cpp

    llama_cpp.llama_memory_seq_keep(llama_cpp.llama_get_memory(llm._ctx.ctx), seq)


def set_token(batch: Any, j: int, token: int, pos: int, seq_ids: Sequence[int], logits: bool) -> None:
    """Slot j of a `sequence_batch`: `token` at position `pos` in sequences `seq_ids`, logits wanted or not."""
    b = batch.batch
    b.token[j] = token
    b.pos[j] = pos
    b.n_seq_id[j] = len(seq_ids)
    for k, s in enumerate(seq_ids):
        b.seq_id[j][k] = s
    b.logits[j] = logits


def decode(llm: Any, batch: Any, n_tokens: int) -> None:
    """Decode the first `n_tokens` slots of a `sequence_batch` (RuntimeError if llama_decode fails)."""
    batch.batch.n_tokens = n_tokens
    llm._ctx.decode(batch)


def decode_run(llm: Any, tokens: Sequence[int], n_past: int) -> None:
    """Decode `tokens` at positions n_past.. in sequence 0 with llama-cpp-python's own batch, logits for all."""
    llm._batch.set_batch(list(tokens), n_past=n_past, logits_all=True)
    llm._ctx.decode(llm._batch)


def logits(llm: Any, n_rows: int) -> np.ndarray:
    """The last decode's logits, one row per token that asked for them, in batch order (llama.h): a view
    of llama.cpp's buffer, valid until the next decode."""
    import llama_cpp

    return np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm._ctx.ctx), shape=(n_rows, llm.n_vocab()))


def record_tokens(llm: Any, pos: int, tokens: Sequence[int]) -> None:
    """Write `tokens` into the token history at `pos` (what the cache holds), ending it there."""
    llm.input_ids[pos : pos + len(tokens)] = tokens
    llm.n_tokens = pos + len(tokens)


def mark_logits_stale(llm: Any) -> None:
    """Tell `Llama` its logits buffer no longer belongs to the last cached token, so its own generation
    re-evaluates that token instead of sampling from our scoring batch's rows."""
    llm._requires_eval = True
