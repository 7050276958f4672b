"""Hypothesis strategies for PII in every form the redactor must see through (issue 17), and the check
that none of it survives in an output.

A `Case` is one field value (url, page_title, referrer or search_query) holding one piece of PII: an
e-mail (IP literals too), a phone number, a card number (Luhn-valid, any grouping), an SSN, or a secret
(`key=value` with a secret key, `key = value`, `/token/value`, a bearer or JWT token). The PII is
written in one form: plain, percent-encoded (once, twice, three times), `+`-joined, form-encoded, or
mixed (each character percent-encoded or not, separators replaced by `+` or not). The field puts it
in a URL's query, path, fragment or a nested encoded URL, or in words; it is always set off from the
words around it by a delimiter (PII glued to letters, `call5551234567`, is not a case).

`survivors(case, texts)` lists what of the case's PII is still readable in output strings: the needle
itself (case-insensitive, also after percent-decoding and reading `+` as a space), and for numbers
their digits with everything else removed. `draw_cases(field, n)` draws the same `n` cases on every run;
`forbidden_digests` and `cache_keys` check the text-vector cache, which stores digests, not texts.
Shared by tests/test_pii.py, tests/test_pii_outputs.py and benchmarks/bench_pii.py.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from clickintent.encoder.features import search_terms
from clickintent.pii import decode, luhn_ok

FIELDS = ("url", "page_title", "referrer", "search_query")
KINDS = ("email", "phone", "card", "ssn", "secret")
FORMS = ("plain", "encoded", "encoded2", "encoded3", "plus", "form", "mixed")
WORDS = ("cards", "loans", "help", "apply", "savings", "mortgage", "contact", "my", "lost", "call", "reset", "the")
DELIMITERS = (" ", ", ", ": ", " (", " / ", " - ")


@dataclass(frozen=True)
class Case:
    kind: str
    form: str
    field: str
    value: str  # the field's raw value
    needles: tuple[str, ...]  # must not be readable in any output
    digits: str = ""  # for numbers: must not appear in any output's digits


def _luhn_complete(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


_alnum = "abcdefghijklmnopqrstuvwxyz0123456789"


@st.composite
def emails(draw: st.DrawFn) -> tuple[str, tuple[str, ...], str]:
    local = draw(st.from_regex(r"[a-z]{2,8}[0-9]{1,3}(?:[._+-][a-z0-9]{2,6})?", fullmatch=True))
    if draw(st.integers(0, 9)) == 0:
        domain = "[" + ".".join(str(draw(st.integers(1, 254))) for _ in range(4)) + "]"
    else:
        domain = draw(st.from_regex(r"[a-z]{3,9}\.(?:com|org|net|io|co\.uk|example)", fullmatch=True))
    address = f"{local}@{domain}"
    return address, (address, local), ""


@st.composite
def phones(draw: st.DrawFn) -> tuple[str, tuple[str, ...], str]:
    area, mid, last = draw(st.integers(201, 989)), draw(st.integers(200, 999)), draw(st.integers(0, 9999))
    sep = draw(st.sampled_from(["-", " ", "."]))
    number = draw(
        st.sampled_from(
            [
                f"({area}) {mid}-{last:04d}",
                f"{area}{sep}{mid}{sep}{last:04d}",
                f"+1 {area} {mid} {last:04d}",
                f"+44 20 {mid}{last % 10} {last:04d}",
                f"+33 1 {mid % 100:02d} {last // 100:02d} {last % 100:02d} {area % 100:02d}",
            ]
        )
    )
    digits = re.sub(r"\D", "", number)
    return number, (number,), digits


_CARD_LAYOUTS = {13: (4, 4, 5), 15: (4, 6, 5), 16: (4, 4, 4, 4), 19: (4, 4, 4, 4, 3)}


@st.composite
def cards(draw: st.DrawFn) -> tuple[str, tuple[str, ...], str]:
    length = draw(st.sampled_from(sorted(_CARD_LAYOUTS)))
    prefix = {13: "4", 15: draw(st.sampled_from(["34", "37"])), 16: draw(st.sampled_from(["4", "51", "55", "6011"])),
              19: "4"}[length]  # fmt: skip
    body = prefix + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=length - len(prefix) - 1,
                                          max_size=length - len(prefix) - 1)))  # fmt: skip
    digits = _luhn_complete(body)
    layout = draw(st.sampled_from(["grouped", "none", "mixed"]))
    if layout == "none":
        return digits, (digits,), digits
    groups, i = [], 0
    for size in _CARD_LAYOUTS[length]:
        groups.append(digits[i : i + size])
        i += size
    if layout == "grouped":
        text = draw(st.sampled_from([" ", "-", ".", "/", "_", "+"])).join(groups)
    else:
        text = groups[0] + "".join(draw(st.sampled_from([" ", "-", ".", "/", "_", "+", " - "])) + g for g in groups[1:])
    return text, (text,), digits


@st.composite
def ssns(draw: st.DrawFn) -> tuple[str, tuple[str, ...], str]:
    area, group, serial = draw(st.integers(1, 899)), draw(st.integers(1, 99)), draw(st.integers(1, 9999))
    digits = f"{area:03d}{group:02d}{serial:04d}"
    sep = draw(st.sampled_from(["-", " ", ".", "/"]))
    text = draw(
        st.sampled_from(
            [f"{area:03d}{sep}{group:02d}{sep}{serial:04d}", f"ssn={digits}", f"SSN: {digits}", f"ssn {digits}"]
        )
    )
    return text, (text,), digits


SECRET_KEYS = (
    "token", "access_token", "api_key", "api-key", "x-api-key", "apiKey", "jwt", "auth_key", "auth",
    "X-Amz-Signature", "password", "pin", "cvv", "session", "sessionid", "client_secret", "code", "sig",
)  # fmt: skip


@st.composite
def secrets(draw: st.DrawFn) -> tuple[str, tuple[str, ...], str]:
    style = draw(st.sampled_from(["pair", "spaced", "path", "bearer", "jwt"]))
    key = draw(st.sampled_from(SECRET_KEYS))
    if key in ("pin", "cvv"):  # letters and digits, short
        value = draw(st.from_regex(r"[a-z]{2}[0-9]{1,2}[a-z0-9]{0,2}", fullmatch=True))
    else:
        value = draw(st.from_regex(r"[A-Za-z]{3,10}[0-9]{2,6}[A-Za-z0-9]{1,12}", fullmatch=True))
    if style == "pair":
        return f"{key}={value}", (value,), ""
    if style == "spaced":
        return f"{key} = {value}", (value,), ""
    if style == "path":
        stem = draw(st.sampled_from(["token", "secret", "reset-password", "api-key", "jwt"]))
        return f"/{stem}/{value}", (value,), ""
    if style == "bearer":
        value = draw(st.from_regex(r"[A-Za-z0-9]{4,10}[0-9][A-Za-z0-9._~-]{4,30}", fullmatch=True))
        return f"Bearer {value}", (value,), ""
    parts = [draw(st.from_regex(r"[A-Za-z0-9_-]{8,20}", fullmatch=True)) for _ in range(3)]
    token = "eyJ" + ".".join(parts)
    return token, (token, parts[-1]), ""


PII = {"email": emails(), "phone": phones(), "card": cards(), "ssn": ssns(), "secret": secrets()}


def _mixed(draw: st.DrawFn, text: str) -> str:
    flags = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    out = []
    for ch, flag in zip(text, flags, strict=True):
        if ch == " " and flag:
            out.append("+")
        elif flag or (not ch.isalnum() and draw(st.booleans())):
            out.append(quote(ch, safe=""))
            if ch.isalnum():  # letters and digits encoded too: tok%65n
                out[-1] = "".join(f"%{b:02X}" for b in ch.encode())
        else:
            out.append(ch)
    return "".join(out)


def render(draw: st.DrawFn, text: str, form: str) -> str:
    """`text` written in `form`."""
    if form == "plain":
        return text
    if form.startswith("encoded"):
        for _ in range(int(form[-1]) if form[-1].isdigit() else 1):
            text = quote(text, safe="")
        return text
    if form == "plus":  # spaces written as '+', as a search box's form submits them
        return text.replace(" ", "+")
    if form == "form":
        return quote_plus(text)
    return _mixed(draw, text)


def _words(draw: st.DrawFn, n: int) -> str:
    return " ".join(draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=n)))


def place(draw: st.DrawFn, field: str, kind: str, pii: str) -> str:
    """A value of `field` that holds `pii` (already rendered) somewhere a real one might."""
    url_like = field in ("url", "referrer")
    if url_like:
        host = "bank.example" if field == "url" else draw(st.sampled_from(["www.google.com", "mail.example", "t.co"]))
        path = "/" + "/".join(draw(st.lists(st.sampled_from(WORDS), min_size=0, max_size=3)))
        where = draw(st.sampled_from(["query", "path", "fragment", "nested", "search"]))
        if kind == "secret" and not pii.startswith(("/", "eyJ", "Bearer")) and where in ("path", "fragment"):
            where = "query"
        if pii.startswith("/") and where != "nested":
            return f"https://{host}{path}{pii}/next?lang=en"
        if where == "query":
            value = pii if kind == "secret" and "=" in pii else f"ref={pii}"
            return f"https://{host}{path}?step=2&{value}&lang=en"
        if where == "path":
            return f"https://{host}{path}/{pii}/details"
        if where == "fragment":
            return f"https://{host}{path}#{pii}"
        if where == "nested":  # a whole URL as a parameter, encoded once more
            inner = f"https://other.example/cb?{pii if '=' in pii else 'u=' + pii}"
            return f"https://{host}{path}?next={quote(inner, safe='')}"
        return f"https://{host}/search?q={quote_plus(_words(draw, 3))}+{pii}&hl=en"
    before = _words(draw, 4)
    after = _words(draw, 3) if draw(st.booleans()) else ""
    text = f"{before}{draw(st.sampled_from(DELIMITERS))}{pii}"
    return f"{text} {after}".strip()


@st.composite
def cases(draw: st.DrawFn, field: str | None = None) -> Case:
    """One field value holding one piece of PII in one form."""
    field = field or draw(st.sampled_from(FIELDS))
    kind = draw(st.sampled_from(KINDS))
    form = draw(st.sampled_from(FORMS))
    text, needles, digits = draw(PII[kind])
    value = place(draw, field, kind, render(draw, text, form))
    return Case(kind, form, field, value, needles, digits)


def readings(text: str) -> list[str]:
    """The ways a reader could read `text`: as is, percent-decoded once or twice, `+` as a space."""
    low = text.lower()
    once = unquote(low)
    return [low, once, unquote(once).replace("+", " "), low.replace("+", " ")]


def survivors(case: Case, texts: list[str]) -> list[str]:
    """The needles of `case` still readable in any of `texts` (empty: nothing survived)."""
    found = []
    for text in texts:
        seen = readings(text)
        for needle in case.needles:
            n = needle.lower()
            if any(n in r for r in seen):
                found.append(f"{needle!r} in {text[:300]!r}")
        if case.digits and any(case.digits in re.sub(r"\D", "", r) for r in seen[:2]):
            found.append(f"digits {case.digits} in {text[:300]!r}")
    return found


def draw_cases(field: str, n: int) -> list[Case]:
    """`n` cases for `field`, the same on every run (hypothesis derandomized, no shrinking)."""
    out: list[Case] = []

    @settings(max_examples=n, derandomize=True, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(cases(field))
    def collect(case: Case) -> None:
        out.append(case)

    collect()
    return out


def forbidden_digests(case: Case, model: str) -> set[bytes]:
    """Digests the text cache would hold if `case` had reached it unredacted (TextVectors' key)."""
    texts = {case.value, decode(case.value)}
    texts |= {search_terms(t) for t in list(texts)} | {t.strip() for t in texts}
    return {hashlib.sha256(f"{model}\x00{t}".encode()).digest() for t in texts if t}


def cache_keys(cache_dir: Path) -> set[bytes]:
    keys: set[bytes] = set()
    for db in cache_dir.glob("*.sqlite"):
        with sqlite3.connect(db) as con:
            keys |= {k for (k,) in con.execute("SELECT key FROM vectors")}
    return keys
