"""What a group of sessions is about, read from the site's own text: its site sections and its phrases.

**Sections** (where a visit is). Each page gets at most one section, from the structure the site gives it:
1. a dotted category code as its title or page (`electronics.smartphone`): the code's first part;
2. a title breadcrumb (`Refinance calculator | Home Loans | Bank`): the part after the page's own name,
   the site's name dropped (a part with digits, such as `Step 2 of 4`, is a step, not a section);
3. the first segment of its URL path, when the site has several pages under it (a directory), named by
   the breadcrumb most of its titled pages carry (`/home-equity/...` -> `Home Loans`) or else by its
   words (`/auto-loans` -> `Auto loans`). On a *flat* site, where directories hold under `FLAT` of the
   pages (`/credit-cards`, `/mortgages`, one page each), every first segment is a section: there a page
   directly under the root is what the site has for a section;
4. the home page (path `/` or empty): `Home`.
A page with none of these (an opaque product id) has no section. `SiteMap` learns the directories, their
names and whether the site is flat once from a whole table.

**Phrases** (what a group is about): class-based TF-IDF, as BERTopic's c-TF-IDF (Grootendorst 2022,
https://arxiv.org/abs/2203.05794), over *terms* of each session: word n-grams (1-3 words, none starting or
ending with a stop word) and whole short names (up to 6 words) of page titles (their own name, not the
breadcrumb), URL path segments (`/refinance-calculator` -> `refinance calculator`), search queries and the
parts of dotted codes. A term counts once per session, so a long session does not outweigh a short one:
weight(t, c) = share of c's sessions with t x log(1 + mean sessions per group / sessions with t). `mmr`
then picks diverse candidates among the best (maximal marginal relevance, as KeyBERT does). Words are
Unicode letters and digits, so titles in any language give phrases; the stop words are English only.

Left out: stemming, phrases across page boundaries, sections deeper than one level.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from clickintent.pii import redact
from clickintent.taxonomy.render import neutralize, page_path

# fmt: off
STOP = frozenset({
    "a", "an", "the", "and", "or", "of", "for", "to", "in", "on", "at", "by", "with", "from", "your", "you",
    "my", "our", "we", "is", "are", "be", "it", "this", "that", "as", "vs", "how", "what", "when", "why", "can",
    "do", "does", "i", "me", "us",
})
# fmt: on
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)  # words, "today's" kept whole
_CLAUSE = re.compile(r"[,;:()\[\]!?]+|\s[-–—]\s")  # a phrase never runs across these
_CODE = re.compile(r"^[^\W\d_][\w-]*(?:\.[^\W\d_][\w-]*)+$", re.UNICODE)  # electronics.smartphone
_SEP = re.compile(r"[-_.+]+")
MAX_TERM_WORDS = 6
SUBSUMED = 0.9  # a part of a whole piece is dropped when the whole piece has this share of its visits
WHOLE = "\x00"  # marks a term that was a whole piece somewhere (not only part of a longer one)
HOME = "Home"  # the home page's section
# A site is flat when its directories (first segments with 2+ pages) hold under this share of its pages:
# none at all, or one small one beside many pages directly under the root (the GA4 sample's `/cards`).
FLAT = 0.5


def _clean(text: str) -> str:
    """Untrusted web text made safe to show and to use as a name: PII redacted, instructions removed."""
    return " ".join(neutralize(redact(text)).split())


def is_code(text: str | None) -> bool:
    """`electronics.smartphone`-style category codes (no spaces, dotted words; not a host name)."""
    return bool(text) and bool(_CODE.match(text or "")) and not (text or "").startswith("www.")


def is_home(page: str) -> bool:
    """The site's home page: a page id whose path is `/` or empty (`www.bank.com/`, `https://bank.com`)."""
    return urlsplit(page_path(page)).path in ("", "/")


def _segments(page: str) -> list[str]:
    """Path segments of a page id that are words, not ids (`/accounts/{num}/activity` -> accounts, activity)."""
    path = urlsplit(page_path(page)).path
    return [s for s in path.split("/") if s and "{" not in s and not any(ch.isdigit() for ch in s) and len(s) <= 40]


def _words_of(segment: str) -> str:
    return " ".join(_SEP.split(segment)).strip()


def title_parts(title: str | None, suffix: str = "") -> tuple[str, list[str]]:
    """(the page's own name, its breadcrumbs) from a title: `Refinance calculator | Home Loans | Bank`."""
    if not title:
        return "", []
    parts = [p.strip() for p in title.split(" | ") if p.strip()]
    if suffix and len(parts) > 1 and parts[-1] == suffix:
        parts = parts[:-1]
    if not parts:
        return "", []
    return parts[0], [p for p in parts[1:] if not any(ch.isdigit() for ch in p)]


@dataclass
class SiteMap:
    """The site's sections as its own pages show them; see the module docstring."""

    suffix: str = ""  # the site name every title ends with
    directories: dict[str, str] = field(default_factory=dict)  # first path segment -> section name
    flat: bool = False  # no directories to speak of: every first segment is a section (module docstring)

    @classmethod
    def learn(cls, sessions_events: Iterable[Sequence[Mapping[str, Any]]], suffix: str = "") -> SiteMap:
        paths: dict[str, set[str]] = {}
        crumbs: dict[str, Counter[str]] = {}
        titled: Counter[str] = Counter()
        for events in sessions_events:
            for ev in events:
                page = str(ev.get("page") or "")
                segs = _segments(page) if page else []
                if not segs:
                    continue
                paths.setdefault(segs[0], set()).add(urlsplit(page_path(page)).path)
                _, crumb = title_parts(ev.get("page_title"), suffix)
                if ev.get("page_title"):
                    titled[segs[0]] += 1
                if crumb:
                    crumbs.setdefault(segs[0], Counter())[crumb[0]] += 1
        in_dirs = sum(len(seen) for seen in paths.values() if len(seen) >= 2)
        flat = in_dirs < FLAT * sum(len(seen) for seen in paths.values())
        names = {}
        for seg, seen in paths.items():
            if len(seen) < 2 and not flat:
                continue  # one page (`/privacy`) is a page, not a section, on a site with directories
            best = sorted(crumbs.get(seg, Counter()).items(), key=lambda kv: (-kv[1], kv[0]))
            if best and best[0][1] * 2 > titled[seg]:
                names[seg] = _clean(best[0][0])
            else:
                names[seg] = _clean(_words_of(seg)).capitalize()
        return cls(suffix, {k: v for k, v in names.items() if v}, flat)

    def section(self, page: str | None, title: str | None) -> str | None:
        """The one section of a page (see the module docstring), or None."""
        for code in (title, page):
            if code and is_code(code):
                return _clean(_words_of(code.split(".", 1)[0])).capitalize() or None
        _, crumb = title_parts(title, self.suffix)
        if crumb:
            return _clean(crumb[0]) or None
        if page and is_home(page):
            return HOME
        segs = _segments(page) if page else []
        return self.directories.get(segs[0]) if segs else None

    def sections(self, events: Sequence[Mapping[str, Any]]) -> set[str]:
        """The sections one session visits."""
        found = (self.section(ev.get("page"), ev.get("page_title")) for ev in events)
        return {s for s in found if s}


def _ngrams(words: list[str], n_max: int = 3) -> Iterable[tuple[str, ...]]:
    """Runs of 1-`n_max` words with no stop word and no number in them."""
    for n in range(1, n_max + 1):
        for i in range(len(words) - n + 1):
            gram = words[i : i + n]
            if not any(w.lower() in STOP or w.isdigit() for w in gram):
                yield tuple(gram)


def session_terms(events: Sequence[Mapping[str, Any]], suffix: str = "") -> dict[str, str]:
    """term (lower case) -> how it was written, for one session (see the module docstring). A term that is
    a whole piece (a title's own name, a path segment, a query) is written with a leading `WHOLE` mark."""
    pieces: list[str] = []
    for ev in events:
        title, page = ev.get("page_title"), ev.get("page")
        if title and is_code(title):
            pieces += [_words_of(p) for p in title.split(".")]
        elif title:
            pieces.append(title_parts(title, suffix)[0])
        if page and is_code(page):
            pieces += [_words_of(p) for p in page.split(".")]
        elif page:
            pieces += [_words_of(s) for s in _segments(page)]
        if ev.get("search_query"):
            pieces.append(str(ev["search_query"]))
    out: dict[str, str] = {}
    for piece in pieces:
        for clause in _CLAUSE.split(_clean(piece)):
            words = _WORD.findall(clause)
            if not words:
                continue
            if len(words) <= MAX_TERM_WORDS and not words[0].isdigit():
                out[" ".join(words).lower()] = WHOLE + " ".join(words)
            for gram in _ngrams(words):
                out.setdefault(" ".join(gram).lower(), " ".join(gram))
    return out


@dataclass
class Phrases:
    """c-TF-IDF phrases of each group of sessions."""

    weights: list[dict[str, float]]  # per group: term -> weight
    written: dict[str, str]  # term -> its most common written form
    share: list[dict[str, float]]  # per group: term -> share of the group's sessions that have it
    whole: set[str] = field(default_factory=set)  # terms that were a whole title name, segment or query

    def top(self, group: int, n: int, broad: float = 0.0) -> list[str]:
        """The group's `n` best terms, as written, best first (ties by the text). `broad` > 0 keeps only
        whole pieces and the parts of them that at least that share of the group has (`Mortgage` in most
        of a group's visits, not `Trouble signing` cut from `Trouble signing in`), and drops a part that a
        whole piece holding it stands for (nearly every visit with the part has the whole piece:
        `Trouble signing in`, not also `Trouble signing` and `Trouble`)."""
        share = self.share[group]
        ok = {t for t, s in share.items() if t in self.whole or s >= broad} if broad else set(share)
        if broad:
            wholes = [w for w in ok if w in self.whole]
            ok = {t for t in ok if t in self.whole or not any(_inside(t, w) and share[w] >= SUBSUMED * share[t]
                                                               for w in wholes)}  # fmt: skip
        items = [kv for kv in self.weights[group].items() if kv[0] in ok]
        best = sorted(items, key=lambda kv: (-kv[1], kv[0]))[:n]
        return [self.written[t] for t, _ in best]


def _inside(part: str, whole: str) -> bool:
    """`part`'s words are a run of `whole`'s words, and `whole` is longer."""
    return part != whole and f" {part} " in f" {whole} "


def ctfidf(terms: Sequence[Mapping[str, str]], groups: np.ndarray, n_groups: int, min_share: float = 0.05) -> Phrases:
    """c-TF-IDF over sessions' `terms` (from `session_terms`), one weight table per group id in `groups`
    (ids outside 0..n_groups-1 count towards document frequencies only). Terms in under `min_share` of a
    group's sessions are left out of its table (and at least two sessions must have them)."""
    df: Counter[str] = Counter()
    inside: list[Counter[str]] = [Counter() for _ in range(n_groups)]
    forms: dict[str, Counter[str]] = {}
    whole: set[str] = set()
    for t, g in zip(terms, groups, strict=True):
        df.update(t.keys())
        for key, form in t.items():
            if form.startswith(WHOLE):
                whole.add(key)
                form = form[1:]
            forms.setdefault(key, Counter())[form] += 1
        if 0 <= g < n_groups:
            inside[int(g)].update(t.keys())
    sizes = np.bincount(np.asarray([g for g in groups if 0 <= g < n_groups], dtype=int), minlength=n_groups)
    mean_size = max(1.0, float(sizes[sizes > 0].mean()) if (sizes > 0).any() else 1.0)
    weights, shares = [], []
    for g in range(n_groups):
        n_g = max(1, int(sizes[g]))
        share = {t: c / n_g for t, c in inside[g].items() if c >= 2 and c / n_g >= min_share}
        shares.append(share)
        weights.append({t: s * math.log(1.0 + mean_size / df[t]) for t, s in share.items()})
    written = {k: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for k, c in forms.items()}
    return Phrases(weights, written, shares, whole)


def mmr(vectors: np.ndarray, relevance: np.ndarray, k: int, diversity: float = 0.5) -> list[int]:
    """Indices of `k` rows of unit `vectors`: each next one maximises (1 - diversity) x relevance -
    diversity x its highest cosine to those already picked (maximal marginal relevance)."""
    n = len(relevance)
    if n == 0:
        return []
    picked = [int(np.argmax(relevance))]
    sims = vectors @ vectors.T
    while len(picked) < min(k, n):
        rest = [i for i in range(n) if i not in picked]
        score = [(1 - diversity) * relevance[i] - diversity * max(sims[i, j] for j in picked) for i in rest]
        picked.append(rest[int(np.argmax(score))])
    return picked


def term_vectors(terms: Sequence[Mapping[str, str]], min_sessions: int = 2) -> np.ndarray:
    """Unit TF-IDF vectors of sessions over their terms (`session_terms`; each counts once per session), the
    terms that at least `min_sessions` sessions have: clusters of these split visits on the very phrases
    that then name them (a refinance page among shared calculators), where the MiniLM vector of a visit's
    words sees mostly the section they share (docs/TAXONOMY.md, issue 19)."""
    df = Counter(t for ts in terms for t in ts)
    vocab = {t: j for j, t in enumerate(sorted(t for t, c in df.items() if c >= min_sessions))}
    x = np.zeros((len(terms), max(1, len(vocab))), np.float32)
    n = len(terms)
    for i, ts in enumerate(terms):
        for t in ts:
            if (j := vocab.get(t)) is not None:
                x[i, j] = math.log((1 + n) / (1 + df[t])) + 1.0  # scikit-learn's smoothed idf
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
