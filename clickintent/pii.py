"""PII redaction for untrusted web text: URLs, page titles, referrers and search queries.

Redaction sees what every later step will see (issue 17). The text is first *decoded* until it stops
changing (`decode`: percent-escapes, so `%2540` -> `%40` -> `@`; control characters read as spaces and
invisible format characters dropped, since `urlsplit` and tokenizers drop them too), then redacted,
and only then normalised by its callers (clickintent.urls). What is stored is therefore stable under
decoding: no later `parse_qsl` or `unquote` can bring back what an encoding hid. Every rule reads
`+` (the form encoding of a space) wherever it reads a space, so `555+123+4567` is a phone number as
surely as `555 123 4567`.

Redacted, in this order: secrets (the value of any query-string or `key = value` pair whose key
names one: `token`, `x-api-key`, `X-Amz-Signature`, `auth_key`, `pin`, `cvv`, ... (`SECRET_KEY_WORDS`);
the path segment after `/token/`, `/secret/`, ...; bearer and JWT tokens), e-mail addresses (IP
literals such as `root@[10.0.0.1]` included), US social security numbers (`078-05-1120`,
`078 05 1120`, `078.05.1120`, or nine digits after `ssn`), card numbers (13-19 digits, grouped by
spaces, `-`, `.`, `/`, `_` or `+`, that pass the Luhn check, so product codes survive), phone numbers
and account-like digit runs (10-12 digits, or 6-17 digits after a word such as "account"). Each
match becomes a placeholder such as ``[EMAIL]`` that no later rule can match again.

Cost is linear in the text: every pattern starts at a run boundary or a fixed word and repeats a
bounded number of times, and a value longer than `MAX_SCAN_CHARS` has only that much scanned (the
rest is dropped, marked). A 1 MiB value of the worst kinds takes well under a second
(tests/test_pii.py times them); ingest and the service refuse values over 8192 characters anyway.

`redact` works on one string (the service uses it); `redact_array` on an Arrow column, running the
rules only on values that a cheap vectorised pre-filter flags, once per distinct value; `redact_excerpt`
redacts and cuts a value for display. What it leaves out: names and street addresses (no reliable
pattern), non-US national ids, encodings other than percent and `+` (HTML entities, full-width
forms), free text in languages other than English.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from functools import lru_cache
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc

KINDS = ("secret", "email", "ssn", "card", "phone", "account")
MAX_SCAN_CHARS = 1 << 20  # longest text scanned; the rest of a longer value is dropped (and marked)
MAX_DECODE_PASSES = 8  # decoding rounds; a text still changing after them loses its '%' signs
UNSCANNED = "[+{n} chars not scanned]"

_Span = tuple[int, int, str, str]  # start, end, placeholder, kind
_Rule = Callable[[str], Iterator[_Span]]

# --- decoding ---------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # read as spaces (urlsplit deletes \t\r\n, which could join digits)
_INVISIBLE = re.compile(r"[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")  # soft hyphen, zero-width, marks
_SURROGATE = re.compile(r"[\udc80-\udcff]")  # bytes that were not UTF-8 (surrogate escapes)


def _reencode(m: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in m.group(0).encode("utf-8", "surrogateescape"))


def _decode_once(text: str) -> str:
    text = _CONTROL.sub(" ", _INVISIBLE.sub("", text))
    if "%" not in text:
        return text
    decoded = unquote(text, errors="surrogateescape")
    return _SURROGATE.sub(_reencode, decoded) if _SURROGATE.search(decoded) else decoded


def decode(text: str) -> str:
    """`text` as later steps read it, decoded until it stops changing (see the module doc).

    Percent-escapes that are not UTF-8 stay escaped. A text still changing after `MAX_DECODE_PASSES`
    rounds (deliberately nested `%25`s) loses its '%' signs, so nothing can decode it further."""
    for _ in range(MAX_DECODE_PASSES):
        decoded = _decode_once(text)
        if decoded == text:
            return text
        text = decoded
    return text.replace("%", "") if _decode_once(text) != text else text


# --- rules: each finds the spans to replace in a text ------------------------------------------------------

# A key names a secret when it holds one of these words as a part (split at non-letters and camelCase:
# `auth_key`, `x-api-key`, `apiKey`, `PIN`), ...
SECRET_KEY_WORDS = (
    "token", "secret", "password", "passwd", "passcode", "pwd", "pass", "auth", "authorization", "key",
    "apikey", "sig", "signature", "session", "sessionid", "jsessionid", "phpsessid", "otp", "pin", "cvv",
    "cvc", "cvv2", "cvc2", "csc", "ssn", "email", "jwt", "nonce", "credential", "credentials",
)  # fmt: skip
# ... or one of these anywhere (`accessToken`, `X-Amz-Signature`, `userpassword`), ...
SECRET_KEY_STEMS = ("token", "secret", "passw", "apikey", "sessid", "sessionid", "signature", "credential", "jwt")
SECRET_WHOLE_KEYS = ("code", "sid")  # ... or is exactly one of these (as parts they are too common).
# A path segment holding one of these is followed by a secret (`/token/X`, `/reset-password/X`); narrower
# than the keys, so `/auth/login` and `/cards/pin/reset` keep their structure.
SECRET_PATH_STEMS = ("token", "secret", "passw", "apikey", "api-key", "api_key", "jwt", "signature", "credential")


_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_WORDS = frozenset(SECRET_KEY_WORDS)


@lru_cache(maxsize=4096)  # keys repeat (`?token=` in every URL of a site); bounded: <= 4096 keys of <= 64 chars
def _secret_key(key: str) -> bool:
    low = key.lower()
    if low in SECRET_WHOLE_KEYS or any(s in low for s in SECRET_KEY_STEMS):
        return True
    return not _WORDS.isdisjoint(_NOT_ALNUM.split(_CAMEL.sub(r"\1 \2", key).lower()))


def is_secret_key(key: str) -> bool:
    """True when a query-string (or `key = value`) key names a secret: `token`, `x-api-key`, `auth_key`..."""
    return _secret_key(key) if len(key) <= 64 else _secret_key.__wrapped__(key)


# A whole key (read to its end at once: possessive, so a long run is never re-read), '=' with optional
# spaces or '+' (a form-encoded space), then (looked ahead at, so a value can itself start the next pair:
# `ref=token=X`) the value, up to the next '=' but for base64 padding. Whether the key names a secret is
# decided in Python.
_KV = re.compile(r"(?<![\w.\[\]-])([\w.\[\]-]++)[ \t+]{0,3}=(?=[ \t+]{0,3}((?i:bearer[ \t+]+)?[^&#;\s=]+=*))")
_PATH = re.compile(rf"(?<=/)[\w.-]{{0,64}}?(?i:{'|'.join(SECRET_PATH_STEMS)})[\w.-]{{0,64}}/(?=([^/?#&;\s]+))")


def _secret_pairs(text: str) -> Iterator[_Span]:
    for m in _KV.finditer(text):
        if is_secret_key(m.group(1)):
            yield m.start(2), m.end(2), "[SECRET]", "secret"


_BEARER = re.compile(r"(?i)\bbearer[\s+]{1,8}[A-Za-z0-9._~+/=-]{6,}")
_JWT = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")

_LOCAL = r"[\w.%+'-]"  # what an e-mail's local part holds here (not '/', '?', '=': URL delimiters)
_DOMAIN = (
    r"(?:(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}"  # example.co.uk, exämple.de
    r"|\[(?:IPv6:)?[0-9A-Fa-f:.]{2,45}\]|\d{1,3}(?:\.\d{1,3}){3}(?!\d))"  # [10.0.0.1], 10.0.0.1
)
# The local part starts at a run boundary and is at most 64 long, so each run is read once (the old
# unbounded pattern re-read it from every position: 23 s for one 1 MiB request, issue 17). A longer run
# before the '@' is caught by _EMAIL_TAIL, which reads back from the '@' itself.
_EMAIL = re.compile(rf"(?<!{_LOCAL}){_LOCAL}{{1,64}}@{_DOMAIN}")
_EMAIL_TAIL = re.compile(rf"(?<={_LOCAL})@{_DOMAIN}")
_LOCAL_REVERSED = re.compile(rf"{_LOCAL}+")


def _long_emails(text: str) -> Iterator[_Span]:
    reversed_text: str | None = None
    for m in _EMAIL_TAIL.finditer(text):
        if reversed_text is None:
            reversed_text = text[::-1]
        local = _LOCAL_REVERSED.match(reversed_text, len(text) - m.start())
        if local is not None:
            yield m.start() - (local.end() - local.start()), m.end(), "[EMAIL]", "email"


# Digit patterns start with a digit (so the regex engine skips other text at C speed), then check that
# it begins a run: `\d(?<!\d\d)`. '+' counts as a space wherever a space may stand.
_SEP = r"[\s./_+-]"  # what people put between digit groups
_SSN = re.compile(rf"\d(?<!\d\d)\d{{2}}{_SEP}\d{{2}}{_SEP}\d{{4}}(?!\d)")  # 078-05-1120, 078 05 1120, 078.05.1120
_SSN_WORD = re.compile(
    rf"(?i:(?<![a-z])(?:ssn|social[\s+]security(?:[\s+]number|[\s+]no\.?)?))\W{{0,5}}"
    rf"\d{{3}}{_SEP}?\d{{2}}{_SEP}?\d{{4}}(?!\d)"
)
_CARD = re.compile(rf"\d(?<!\d\d)(?:{_SEP}{{0,3}}\d){{12,18}}(?!\d)")
_GROUPS = re.compile(r"\d+")
_PHONE = re.compile(
    r"(?<![\w])(?:\+?1[ .+-]?)?\(?\d{3}\)?[ .+-]?\d{3}[ .+-]\d{4}(?!\d)"  # US: 555-123-4567, (555) 123 4567
    r"|(?<![\w])\+\d{1,3}[ .+-]?\d{1,4}(?:[ .+-]?\d{2,4}){2,4}(?!\d)"  # international: +44 20 7946 0958
)
_ACCOUNT = re.compile(r"\d(?<!\d\d)\d{9,11}(?!\d)")
_ACCOUNT_WORD = re.compile(
    r"(?i)(?:account|acct|a/c|iban|routing)(?:[\s+]{0,3}(?:no\.?|number|#|:|=)[\s+]{0,3}|[\s+]{1,3})\d{6,17}(?!\d)"
)
_PLAIN = bytes.maketrans(b"0123456789", bytes(range(10)))
_DOUBLED = bytes.maketrans(b"0123456789", bytes((0, 2, 4, 6, 8, 1, 3, 5, 7, 9)))
MAX_LUHN_CHECKS = 4096  # card candidates checked per text; beyond, each is redacted unchecked


def luhn_ok(digits: str) -> bool:
    """True when the (ASCII) digit string passes the Luhn checksum used by payment cards."""
    if not digits.isascii():  # other scripts' digits (\d matches them): as ASCII
        digits = "".join(str(int(d)) for d in digits)
    backwards = digits[::-1].encode()
    return (sum(backwards[::2].translate(_PLAIN)) + sum(backwards[1::2].translate(_DOUBLED))) % 10 == 0


def holds_card(groups: list[str]) -> bool:
    """Digit groups (`4111 1111 1111 1111 2` -> five) hold a card number when all of them, or a run of
    whole groups with 13-19 digits, pass Luhn: a card written beside another number must not hide in the
    longer run. Only layouts of at most 8 groups are searched (cards come in 3-5 groups)."""
    if luhn_ok("".join(groups)):
        return True
    if len(groups) < 2 or len(groups) > 8:
        return False
    for i in range(len(groups)):
        for j in range(len(groups), i, -1):
            digits = "".join(groups[i:j])
            if 13 <= len(digits) <= 19 and (i, j) != (0, len(groups)) and luhn_ok(digits):
                return True
    return False


def _cards(text: str) -> Iterator[_Span]:
    # A text with thousands of card-length numbers is no URL or title: past MAX_LUHN_CHECKS candidates every
    # one is redacted, which keeps the cost of a hostile value linear with a small constant.
    for n, m in enumerate(_CARD.finditer(text)):
        if n >= MAX_LUHN_CHECKS or holds_card(_GROUPS.findall(m.group(0))):
            yield m.start(), m.end(), "[CARD]", "card"


def _groups(pattern: re.Pattern[str], group: int, placeholder: str, kind: str) -> _Rule:
    def rule(text: str) -> Iterator[_Span]:
        for m in pattern.finditer(text):
            yield m.start(group), m.end(group), placeholder, kind

    return rule


def _gated(words: tuple[str, ...], rule: _Rule) -> _Rule:
    """`rule` run only on texts holding one of `words` (lower case): a C-speed test before a slower scan."""

    def gated(text: str) -> Iterator[_Span]:
        low = text.lower()
        if any(w in low for w in words):
            yield from rule(text)

    return gated


RULES: tuple[_Rule, ...] = (
    _secret_pairs,
    _groups(_PATH, 1, "[SECRET]", "secret"),
    _groups(_BEARER, 0, "[SECRET]", "secret"),
    _groups(_JWT, 0, "[SECRET]", "secret"),
    _groups(_EMAIL, 0, "[EMAIL]", "email"),
    _long_emails,
    _gated(("ssn", "social"), _groups(_SSN_WORD, 0, "[SSN]", "ssn")),
    _groups(_SSN, 0, "[SSN]", "ssn"),
    _cards,
    _groups(_PHONE, 0, "[PHONE]", "phone"),
    _gated(("account", "acct", "a/c", "iban", "routing"), _groups(_ACCOUNT_WORD, 0, "[ACCOUNT]", "account")),
    _groups(_ACCOUNT, 0, "[ACCOUNT]", "account"),
)

# A value can only change if it matches this: every rule needs an '@', an '=', a secret word, a JWT or
# bearer prefix, six digits in a row or two digits around a separator; decoding needs a '%XX', a control
# or an invisible character. Two spellings of one set: Python's for `redact_counts`, RE2's for Arrow.
_PREFILTER_WORDS = r"%[0-9a-f]{2}|[=@]|eyj|bearer|token|secret|passw|api.?key|jwt|signature|credential"
PREFILTER = (
    rf"(?i){_PREFILTER_WORDS}|\p{{Nd}}{{6}}|\p{{Nd}}[\s./_+()-]{{1,3}}\p{{Nd}}"
    r"|[\x00-\x1f\x7f\x{ad}\x{200b}-\x{200f}\x{2060}-\x{2064}\x{feff}]"
)
_PREFILTER = re.compile(
    rf"(?i){_PREFILTER_WORDS}|\d{{6}}|\d[\s./_+()-]{{1,3}}\d|{_CONTROL.pattern}|{_INVISIBLE.pattern}"
)


def _apply(rule: _Rule, text: str, counts: Counter[str]) -> str:
    """`text` with the spans `rule` finds replaced by their placeholders (overlapping spans: the first)."""
    parts: list[str] = []
    pos = 0
    for start, end, placeholder, kind in rule(text):
        if start < pos:
            continue
        parts += (text[pos:start], placeholder)
        pos = end
        counts[kind] += 1
    if not parts:
        return text
    parts.append(text[pos:])
    return "".join(parts)


def redact_counts(text: str) -> tuple[str, Counter[str]]:
    """Redact `text`; return the clean (decoded) text and how many matches of each kind were replaced."""
    counts: Counter[str] = Counter()
    if not text or not _PREFILTER.search(text):
        return text, counts
    rest = len(text) - MAX_SCAN_CHARS
    text = decode(text[:MAX_SCAN_CHARS] if rest > 0 else text)
    for rule in RULES:
        text = _apply(rule, text, counts)
    return (text + UNSCANNED.format(n=rest) if rest > 0 else text), counts


def redact(text: str) -> str:
    """Redact PII from one string (decoded first: see the module doc)."""
    return redact_counts(text)[0]


# How far past a cut `redact_excerpt` reads, so PII that straddles the cut is redacted whole.
EXCERPT_MARGIN = 512


def redact_excerpt(text: str, limit: int) -> str:
    """`text` redacted and cut to `limit` characters, with a marker saying how many were cut.

    Only the first `limit` + `EXCERPT_MARGIN` characters are read, so a long value costs no more than a
    short one; PII that starts before the cut is redacted whole."""
    head = redact(text[: limit + EXCERPT_MARGIN])
    if len(head) <= limit and len(text) <= limit + EXCERPT_MARGIN:
        return head
    return head[:limit] + f"...[+{max(len(text) - limit, 1)} chars]"


def redact_array(values: pa.Array | pa.ChunkedArray, counts: Counter[str] | None = None) -> pa.Array:
    """Redact a string column; add the number of redactions by kind to `counts` when given.

    Only values flagged by the vectorised pre-filter go through Python, once per distinct value; a
    value repeated in many rows counts its redactions once per row.
    """
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if arr.null_count == len(arr):
        return arr
    mask = pc.fill_null(pc.match_substring_regex(arr, PREFILTER[4:], ignore_case=True), False)
    if not pc.any(mask).as_py():
        return arr
    flagged = arr.filter(mask)
    encoded = flagged.dictionary_encode()
    per_value = [redact_counts(v) for v in encoded.dictionary.to_pylist()]
    if counts is not None:
        hits = pc.value_counts(encoded.indices)
        for idx, n in zip(hits.field("values").to_pylist(), hits.field("counts").to_pylist(), strict=True):
            for kind, k in per_value[idx][1].items():
                counts[kind] += k * n
    clean = pc.take(pa.array([text for text, _ in per_value], pa.string()), encoded.indices)
    return pc.replace_with_mask(arr, mask, clean)
