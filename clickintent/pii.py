"""PII redaction for untrusted web text: URLs, page titles, referrers and search queries.

Redacts, in this order: secrets in query strings and bearer/JWT tokens, e-mail addresses, US social
security numbers, card numbers (13-19 digits that pass the Luhn check, so product codes survive), phone
numbers, and account-like digit runs (10-12 digits, or 6-17 digits after a word such as "account").
Each match becomes a placeholder such as ``[EMAIL]`` that no later pattern can match again.

`redact` works on one string (the service uses it); `redact_array` on an Arrow column, running the
regular expressions only on values that a cheap vectorised pre-filter flags, once per distinct value.
What it leaves out: names and street addresses (no reliable pattern), non-US national ids, free text
in languages other than English.
"""

from __future__ import annotations

import re
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

KINDS = ("secret", "email", "ssn", "card", "phone", "account")

# Query-string keys whose values are secrets (matched case-insensitively, as whole keys).
SECRET_KEYS = (
    "token|access_token|id_token|refresh_token|auth|auth_token|authorization|password|passwd|pwd|pass"
    "|session|sessionid|session_id|sid|jsessionid|phpsessid|api_key|apikey|key|secret|client_secret"
    "|otp|code|signature|sig|ssn|email"
)
_SECRET_QS = re.compile(rf"(?i)((?:^|[?&;#])(?:{SECRET_KEYS})=)([^&#;\s]+)")
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_SSN = re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")
_CARD = re.compile(r"(?<!\d)(?:\d(?:[ +-]|%20)?){12,18}\d(?!\d)")  # groups joined by space, -, + or %20
_PHONE = re.compile(
    r"(?<![\w])(?:\+?1[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}(?!\d)"  # US: 555-123-4567, (555) 123 4567
    r"|(?<![\w+])\+\d{1,3}[ .-]?\d{1,4}(?:[ .-]?\d{2,4}){2,4}(?!\d)"  # international: +44 20 7946 0958
)
_ACCOUNT = re.compile(
    r"(?i)(?<!\d)\d{10,12}(?!\d)"
    r"|(?:account|acct|a/c|iban|routing)(?:\s*(?:no\.?|number|#|:|=)\s*|\s+)\d{6,17}(?!\d)"
)

# A value can only contain PII if it matches this: every pattern above needs an '@', an '=', a
# JWT/bearer prefix, six digits in a row, or two digits around a separator. Kept in RE2 syntax for Arrow.
PREFILTER = r"(?i)@|%40|=|eyj|bearer|\d{6}|\d(?:[ .()+-]|%20)+\d|account|acct|a/c|iban|routing"
_PREFILTER = re.compile(PREFILTER)


def luhn_ok(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum used by payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(match: re.Match[str], counts: Counter[str]) -> str:
    digits = re.sub(r"%20|\D", "", match.group(0))
    if 13 <= len(digits) <= 19 and luhn_ok(digits):
        counts["card"] += 1
        return "[CARD]"
    return match.group(0)


def redact_counts(text: str) -> tuple[str, Counter[str]]:
    """Redact `text`; return the clean text and how many matches of each kind were replaced."""
    counts: Counter[str] = Counter()
    if not text or not _PREFILTER.search(text):
        return text, counts

    def sub(pattern: re.Pattern[str], kind: str, repl: str, s: str) -> str:
        out, n = pattern.subn(repl, s)
        if n:
            counts[kind] += n
        return out

    text = sub(_SECRET_QS, "secret", r"\1[SECRET]", text)
    text = sub(_BEARER, "secret", "[SECRET]", text)
    text = sub(_JWT, "secret", "[SECRET]", text)
    text = sub(_EMAIL, "email", "[EMAIL]", text)
    text = sub(_SSN, "ssn", "[SSN]", text)
    text = _CARD.sub(lambda m: _card(m, counts), text)
    text = sub(_PHONE, "phone", "[PHONE]", text)
    text = sub(_ACCOUNT, "account", "[ACCOUNT]", text)
    return text, counts


def redact(text: str) -> str:
    """Redact PII from one string."""
    return redact_counts(text)[0]


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
