"""One sentence of intent per session, by a few-shot completion prompt (works with base models).

The prompt (`prompts/summarize.txt`) shows four rendered visits and their one-sentence intents, then the
session to summarise; the model continues after `### Intent:`. An answer is accepted only if it is one
plain sentence of 3-60 words that does not try to open a new prompt section; anything else is retried
(with sampling) by `LLM.run`. A well-formed answer that is not about its session (no content word in
common with it) or that repeats a few-shot example, which a 270M base model often does, is re-asked with
sampling by `LLM.run_resampled`. Answers are cached, so a re-run costs nothing.

Left out: summaries longer than a sentence, languages other than English.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from functools import cache

from clickintent.llm.base import LLM, Completion, MalformedOutput, Request
from clickintent.taxonomy.render import PROMPTS_DIR, prompt

log = logging.getLogger(__name__)

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


# Words of the rendering itself, which say nothing about what a visit was for.
_FORMAT_WORDS = {
    "page", "title", "query", "dwell", "device", "platform", "events", "minutes", "from", "view", "click",
    "search", "form", "start", "submit", "login", "logout", "desktop", "mobile", "tablet", "more", "steps",
    "visit", "visitor", "visitors", "customer", "customers", "with", "their", "about", "that", "this", "what",
    "looked", "wanted", "https", "www", "com",
}  # fmt: skip


def content_words(text: str) -> set[str]:
    """Lower-case words of 4+ letters that are not rendering vocabulary (plural 's' folded)."""
    return {w.rstrip("s") for w in _WORDS.findall(text.lower()) if len(w) >= 4} - _FORMAT_WORDS


@cache
def few_shot_answers(name: str, marker: str) -> tuple[frozenset[str], ...]:
    """The content words of each example answer in `prompts/<name>.txt` (lines starting with `marker`)."""
    lines = (PROMPTS_DIR / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    return tuple(
        frozenset(content_words(ln[len(marker) :]))
        for ln in lines
        if ln.startswith(marker) and ln[len(marker) :].strip()
    )


def grounded(answer: str, source: str, examples: tuple[frozenset[str], ...]) -> bool:
    """An answer shares a content word with its source and is not (mostly) one of the prompt's examples.

    A 270M base model tends to repeat the last few-shot answer whatever the input; such answers are
    re-asked with sampling (`LLM.run_resampled`)."""
    words = content_words(answer)
    if not words & content_words(source):
        return False
    return all(len(words & ex) / max(1, len(words | ex)) < 0.5 for ex in examples)


def _accept(request: Request, completion: Completion) -> bool:
    try:
        text = clean_summary(completion.text)
    except MalformedOutput:
        return False
    session = request.prompt.rsplit("### Visit\n", 1)[-1]
    return grounded(text, session, few_shot_answers(STEP_PROMPT, "### Intent: "))


def summarize(texts: Mapping[str, str], llm: LLM, step: str = STEP) -> dict[str, str]:
    """session_id -> one-sentence summary, for rendered sessions `texts` (session_id -> text).

    A summary that shares no word with its session, or repeats a few-shot example, is re-asked with
    sampling up to three times; if none is better the first answer is kept (and counted in the log)."""
    ids = list(texts)
    out, ok = llm.run_resampled([summary_request(texts[i]) for i in ids], step, _accept, check=_check)
    log.info("%s: %d of %d summaries grounded", step, sum(ok), len(ok))
    return {i: clean_summary(c.text) for i, c in zip(ids, out, strict=True)}
