"""Names and descriptions for groups of sessions: the LLM chooses among the group's own phrases.

Each group (a cluster, or several merged) is shown to the model as a `Group`: its site section (the one
most over its base share, `generate.top_section`), its distinctive phrases (c-TF-IDF, `phrases.py`) with
the share of its visits that have each, and its commonest searches (`prompts/name_group.txt`). Then:

- **Name**: a restricted choice among the group's candidate phrases, ranked by log-likelihood after that
  prompt, each minus its score after the same prompt with an empty group (contextual calibration, Zhao et
  al. 2021, https://arxiv.org/abs/2102.09690: the prior that favours short, common phrases whatever the
  group). A 270M base model copies its few-shot examples when asked to write a name freely; a choice keeps
  every name grounded in the data. `free=True` lets a capable model write the name, and an answer that is
  not a short name falls back to the best-ranked phrase. A group with no usable phrase is named for its
  section ("Careers visits"), or numbered when it has none. A `browsing` group (its visits go by the home
  page and no one section holds most of them, `generate.is_browsing`) is named `BROWSING` with no model
  call: naming it for one of the links such visits follow ("Branch and ATM locator") says a focus they do
  not have (docs/TAXONOMY.md, "Visits with no section").
- **Description**: by default a template from the group's own data, with no LLM call
  (`Group.template_description`: "Visitors reading about cashback card and credit cards in the Cards
  section, searching for ..."). `describe_groups` (`taxonomy build --llm-descriptions`) asks for a few-shot
  completion after the chosen name instead, accepted only when it is one sentence of 3-30 words, most of
  whose content words (`GROUNDED` of them, not counting who the visitors are and verbs such as
  "comparing") are in the group's block, that repeats no three words of a few-shot description the group
  does not have, and that carries no PII (`redact` leaves it unchanged) and no instruction (`neutralize`
  leaves it unchanged); else re-asked with sampling (`LLM.run_resampled`), then replaced by the template.
  A 270M base model's free sentences are often about something else ("Customers checking their card
  balance and how to return an item"), and they cost a second or more each: hence the template default.

So a misbehaving model can make a name worse, never a build fail. Left out: names in more than one
language per taxonomy; descriptions longer than one sentence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

from clickintent.llm.base import LLM, Completion, MalformedOutput, Request, StepFailed
from clickintent.pii import redact
from clickintent.taxonomy.render import PROMPTS_DIR, neutralize, prompt, quote
from clickintent.taxonomy.summarize import content_words

PROMPT = "name_group"  # prompts/name_group.txt
# Letters of any script, digits and a little punctuation; starts with a letter or digit.
_NAME = re.compile(r"^[^\W_][\w &'/,+.-]*$", re.UNICODE)
MAX_NAME_WORDS = 6
_REDACTED = re.compile(r"\[[^]]*\]")  # what `redact` and `neutralize` leave (`[PHONE]`): not quoted
MAX_DESCRIPTION_WORDS = 30
GROUNDED = 0.6
BROWSING = "Browsing the site"  # the name of a `Group.browsing` group
# How much of each name's score on an empty group is subtracted: 1 is full contextual calibration (PMI),
# which favoured long rare phrases ("Intro APR Card" over "Balance Transfer Card"), 0 none, which favoured
# single common words ("Job", "Transfer"); chosen on development worlds (docs/TAXONOMY.md).
PRIOR_WEIGHT = 0.5
# How much a candidate's coverage (log share of the group's visits with its phrase) adds to its score:
# a name should be about most of the group's visits, not one page of it ("Set a travel notice" for card
# help). Off: no weight from 0.5 to 4 improved the names check on development worlds (docs/TAXONOMY.md).
COVERAGE_WEIGHT = 0.0
# Who visits and what visiting is: words a description may use that no group's phrases need to have.
_FRAME = {
    "customer", "visitor", "shopper", "homeowner", "people", "user", "someone", "looking", "checking",
    "comparing", "reading", "browsing", "using", "wanting", "trying", "finding", "learning", "viewing",
    "their", "about", "some", "other", "pages", "page", "site", "online", "before", "after", "whether",
    "section", "searching",
}  # fmt: skip


def clean_name(text: str, max_words: int = MAX_NAME_WORDS) -> str:
    """A label or category name from an answer's first line; raises `MalformedOutput` if it is not one."""
    name = " ".join(text.strip().split("\n", 1)[0].strip().strip('"').strip().rstrip(".").split())
    if not name or not _NAME.match(name) or len(name) > 50 or len(name.split()) > max_words:
        raise MalformedOutput(f"not a short name: {name[:60]!r}")
    if not any(ch.isalpha() for ch in name):
        raise MalformedOutput(f"a name needs a word, not only digits: {name!r}")
    if name.lower() == "other":
        raise MalformedOutput("`Other` is reserved")
    return name[0].upper() + name[1:]


def clean_description(text: str) -> str:
    """One sentence of 3-30 words with no PII and no instruction; raises `MalformedOutput` otherwise."""
    desc = " ".join(text.strip().split("\n", 1)[0].split())
    words = desc.split()
    if len(words) < 3 or len(words) > MAX_DESCRIPTION_WORDS or "###" in desc:
        raise MalformedOutput(f"not a one-line description: {desc[:80]!r}")
    if redact(desc) != desc or neutralize(desc) != desc:
        raise MalformedOutput("a description may not carry personal data or instructions")
    return desc[0].upper() + desc[1:]


@dataclass
class Group:
    """A group of sessions as the naming prompt shows it, from the data alone."""

    section: str | None  # the site section most of its visits are in
    phrases: list[tuple[str, float]]  # (phrase as written, share of the group's visits with it), best first
    searches: list[str] = field(default_factory=list)  # commonest search queries
    browsing: bool = False  # its visits go by the home page with no one section in focus (module docstring)

    def block(self) -> str:
        """The group as `prompts/name_group.txt` shows it, every web string quoted as data."""
        phrases = [f"{q} ({share:.0%})" for text, share in self.phrases[:6] if (q := quote(text, 60))]
        searches = [q for q in (quote(s, 60) for s in self.searches[:3]) if q]
        lines = [
            "### Group",
            f"Section: {quote(self.section, 40) if self.section else 'none'}",
            "Phrases: " + ("; ".join(phrases) or "none"),
            "Searches: " + ("; ".join(searches) or "none"),
        ]
        return "\n".join(lines)

    def candidates(self, limit: int = 8) -> list[str]:
        """The names the group's phrases offer (valid, distinct up to case), best first."""
        return list(self.candidate_shares(limit))

    def candidate_shares(self, limit: int = 8) -> dict[str, float]:
        """`candidates` -> the share of the group's visits with the phrase it came from (the largest, where
        phrases differing only in case give one name)."""
        out: dict[str, float] = {}
        first: dict[str, str] = {}  # lower case -> the name as first written
        for text, share in self.phrases:
            try:
                name = clean_name(text, max_words=5)
            except MalformedOutput:
                continue
            key = first.setdefault(name.lower(), name)
            if key in out:
                out[key] = max(out[key], share)
            elif len(out) < limit:
                out[key] = share
        return out

    def fallback_name(self, index: int) -> str:
        """A name from the data when no phrase is usable: the best candidate, the section, a number."""
        cands = self.candidates(1)
        if cands:
            return cands[0]
        if self.section:
            try:
                return clean_name(f"{self.section} visits")
            except MalformedOutput:
                pass
        return f"Visit group {index + 1}"

    def template_description(self, name: str = "") -> str:
        """A description from the data alone (the default; the fallback of `describe_groups`): the name and
        up to two more of the group's phrases that neither holds nor is held by one already said, its
        section and its commonest search, e.g. "Visitors reading about cashback card and credit cards in
        the Cards section, searching for "annual fee"." Every word but the frame comes from the group's
        block, so the sentence is grounded by construction; PII and instructions were removed from the
        phrases before (`phrases.py`), from the searches here, and are checked again (`clean_description`)."""
        said: list[str] = [name] if name and self.phrases else []  # not a made-up "Careers visits"
        for text, _ in self.phrases:
            if len(said) >= 3:
                break
            if not any(text.lower() in t.lower() or t.lower() in text.lower() for t in said):
                said.append(text)
        about = _listed([_in_sentence(t) for t in said])
        if self.browsing and name == BROWSING:
            about = _listed([_in_sentence(t) for t, _ in self.phrases[:3]])
            text = f"Visitors browsing the site with no one section in focus: {about}."
            try:
                return clean_description(text if about else "Visitors browsing the site with no one section in focus.")
            except MalformedOutput:
                pass
        where = f" in the {self.section} section" if self.section else ""
        if where and about.lower().endswith(" in"):
            where = "," + where  # "sign in, in the Login section", not "sign in in the"
        searches = (" ".join(neutralize(redact(q)).replace('"', "").split()) for q in self.searches)
        new = (q for q in searches if q and len(q.split()) <= 6 and not _REDACTED.search(q)
               and not any(q.lower() in t.lower() for t in said))  # fmt: skip
        search = next(new, "")
        options = [
            f"Visitors reading about {about}{where}, searching for \"{search}\"." if about and search else "",
            f"Visitors reading about {about}{where}." if about else "",
            f"Visitors to the {self.section} section, searching for \"{search}\"." if self.section and search else "",
            f"Visitors to the {self.section} section." if self.section else "",
            f"Visitors searching for \"{search}\"." if search else "",
        ]
        for text in filter(None, options):
            try:
                return clean_description(text)
            except MalformedOutput:
                continue
        return "Visits whose pages share no words to describe them."  # 8 words: always valid


def _in_sentence(phrase: str) -> str:
    """A phrase as it reads inside a sentence: sentence case lowered (`Cashback card` -> `cashback card`),
    anything else as written (`ISA rates`, `Platinum Rewards Card`)."""
    words = phrase.split()
    if words and words[0][1:].islower() and all(w.islower() or not w.isalpha() for w in words[1:]):
        return phrase[0].lower() + phrase[1:]
    return phrase


def _listed(items: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c` (empty for none)."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


EMPTY = Group(None, [], [])  # the content-free group that calibration scores the names against


def answered(llm: LLM, requests: Sequence[Request], step: str) -> list[Completion | None]:
    """`llm.run`, except that a request whose every answer failed validation (a server that ignores the
    restriction to the choices) gets None instead of failing the step; a backend that cannot be reached
    still fails it."""
    try:
        return list(llm.run(requests, step))
    except StepFailed as e:
        if not isinstance(e.cause, MalformedOutput):
            raise
    out: list[Completion | None] = []
    for r in requests:  # one at a time: those answered before are cached
        try:
            out.append(llm.run_one(r, step))
        except StepFailed as e:
            if not isinstance(e.cause, MalformedOutput):
                raise
            out.append(None)
    return out


def name_groups(
    llm: LLM,
    groups: Sequence[Group],
    *,
    free: bool = False,
    prior_weight: float = PRIOR_WEIGHT,
    coverage_weight: float = COVERAGE_WEIGHT,
) -> list[str]:
    """A name per group (see the module docstring). `coverage_weight`: add this times the log of the share
    of the group's visits that have each candidate phrase to its score (0: the model's calibrated scores
    alone)."""
    if coverage_weight < 0:
        raise ValueError(f"coverage_weight must be >= 0, not {coverage_weight}")
    names = [g.fallback_name(i) for i, g in enumerate(groups)]
    cands = [g.candidates() for g in groups]
    if free:
        reqs = [Request(prompt(PROMPT, group=g.block()) + " ", max_tokens=16, stop=("\n",)) for g in groups]
        for i, c in enumerate(answered(llm, reqs, "label names (free)")):
            try:
                name = clean_name(c.text) if c is not None else ""
            except MalformedOutput:
                continue  # the fallback stands
            if name and _name_words(name) <= _name_words(groups[i].block()):
                names[i] = name  # grounded: every word of it is in the group's section, phrases or searches
        return names
    for i, g in enumerate(groups):
        if g.browsing:
            names[i] = BROWSING
    asked = [i for i, c in enumerate(cands) if len(c) > 1 and not groups[i].browsing]
    reqs = [Request(prompt(PROMPT, group=groups[i].block()), max_tokens=16, choices=tuple(cands[i])) for i in asked]
    out = answered(llm, reqs, "label names")
    priors: list[dict[str, float] | None] = [None] * len(asked)
    if prior_weight and asked:
        empty = prompt(PROMPT, group=EMPTY.block())
        refs = answered(llm, [Request(empty, max_tokens=16, choices=tuple(cands[i])) for i in asked],
                        "label names (calibration)")  # fmt: skip
        priors = [r.choice_logprobs if r is not None else None for r in refs]
    for i, c, prior in zip(asked, out, priors, strict=True):
        if c is not None:
            shares = groups[i].candidate_shares() if coverage_weight else {}
            bonus = {n: coverage_weight * math.log(max(s, 1e-6)) for n, s in shares.items()}
            names[i] = _best_choice(c, prior, prior_weight, bonus)
    return names


def _best_choice(c: Completion, prior: dict[str, float] | None, weight: float, bonus: dict[str, float]) -> str:
    if not c.choice_logprobs:
        return c.text
    scores = {k: v - weight * (prior or {}).get(k, 0.0) + bonus.get(k, 0.0) for k, v in c.choice_logprobs.items()}
    return max(sorted(scores), key=lambda k: scores[k])


def _trigrams(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"[^\W_]+", text.lower())
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


@cache
def _example_trigrams() -> frozenset[tuple[str, ...]]:
    lines = (PROMPTS_DIR / f"{PROMPT}.txt").read_text(encoding="utf-8").splitlines()
    marker = "### Description: "
    return frozenset(t for ln in lines if ln.startswith(marker) for t in _trigrams(ln[len(marker) :]))


def _name_words(text: str) -> set[str]:
    return {w.rstrip("s") for w in re.findall(r"[^\W_]+", text.lower()) if len(w) >= 3} - _FRAME - {"and", "the"}


def described(desc: str, group_block: str, name: str = "") -> bool:
    """A description is about its group and its name: most of its content words are the group's, it says
    at least half of the name's words (a sentence about something else, "Customers signing their phone
    number" for `Trouble signing in`, does not), and it copies no three words of a few-shot example that
    the group does not have."""
    words = content_words(desc) - _FRAME
    if not words or len(words & content_words(group_block)) < GROUNDED * len(words):
        return False
    named = _name_words(name)
    if named and 2 * len(named & _name_words(desc)) < len(named):
        return False
    return not ((_trigrams(desc) & _example_trigrams()) - _trigrams(group_block))


def describe_groups(llm: LLM, groups: Sequence[Group], names: Sequence[str]) -> list[str]:
    """A validated one-sentence description per group, or its template (see the module docstring)."""
    reqs = [
        Request(f"{prompt(PROMPT, group=g.block())} {n}\n### Description:", max_tokens=48, stop=("\n", "###"))
        for g, n in zip(groups, names, strict=True)
    ]

    def accept(request: Request, completion: Completion) -> bool:
        try:
            desc = clean_description(completion.text)
        except MalformedOutput:
            return False
        block, _, named = request.prompt.rsplit("### Group\n", 1)[-1].rpartition("### Name:")
        return described(desc, block, named.removesuffix("### Description:").strip())

    out, ok = llm.run_resampled(reqs, "label descriptions", accept)
    return [
        clean_description(c.text) if good else g.template_description(n)
        for c, good, g, n in zip(out, ok, groups, names, strict=True)
    ]
