"""One sentence of intent per session, by a few-shot completion prompt (works with base models).

The prompt (`prompts/summarize.txt`) shows four rendered visits and their one-sentence intents, then the
session to summarise; the model continues after `### Intent:`. An answer is accepted only if it is one
plain sentence of 3-60 words that does not try to open a new prompt section; anything else is retried
(with sampling) by `LLM.run`. Answers are cached by the backend's cache, so a re-run costs nothing.

Left out: summaries longer than a sentence, languages other than English.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from clickintent.llm.base import LLM, Completion, MalformedOutput, Request
from clickintent.taxonomy.render import prompt

STEP = "summaries"
STEP_PROMPT = "summarize"  # prompts/summarize.txt
MAX_TOKENS = 48
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_WORDS = re.compile(r"[A-Za-z]+")


def summary_request(session_text: str) -> Request:
    return Request(prompt(STEP_PROMPT, session=session_text), max_tokens=MAX_TOKENS, stop=("\n", "###"))


def clean_summary(text: str) -> str:
    """The first sentence of an answer, trimmed; raises `MalformedOutput` if it is not a usable sentence."""
    text = text.strip().split("\n", 1)[0].strip()
    text = _SENTENCE_END.split(text, maxsplit=1)[0].strip().strip('"')
    n_words = len(_WORDS.findall(text))
    if n_words < 3 or len(text.split()) > 60 or "###" in text:
        raise MalformedOutput(f"not a one-sentence summary: {text[:80]!r}")
    return text


def _check(request: Request, completion: Completion) -> None:
    clean_summary(completion.text)


def summarize(texts: Mapping[str, str], llm: LLM, step: str = STEP) -> dict[str, str]:
    """session_id -> one-sentence summary, for rendered sessions `texts` (session_id -> text)."""
    ids = list(texts)
    out = llm.run([summary_request(texts[i]) for i in ids], step, check=_check)
    return {i: clean_summary(c.text) for i, c in zip(ids, out, strict=True)}
