"""URLs: normalising a raw (already redacted) URL into a stable page id, and reading URLs for the encoder.

`normalize_url("https://WWW.Bank.com/apply/step-2?appId=88121&utm_source=x#top")` gives
``www.bank.com/apply/step-2?appId={num}``: lower-case host, no scheme, default port or fragment,
tracking parameters dropped, remaining parameters sorted, and ids (numbers, UUIDs, long hex or
token-like strings) replaced by placeholders in the path and in parameter values. Free-text
parameters (``q=``, ``query=``, ...) become ``{text}``: the text itself lives in `search_query`.

Values without a '/' or a '.' (for example the item ids of the YOOCHOOSE sample) are opaque keys
and come back unchanged. Results are cached (`CACHE_ITEMS` entries, `CACHE_BYTES` bytes, least
recently used first out: clickintent.cache), since a site's URLs repeat. The input must already be
redacted and decoded (clickintent.pii); the cache then never holds PII.

The encoder's featurizer reads URLs with the same parsing (`split_url`): `url_tokens` (host, path
segments, words, query keys of a page), `site` (a crude registered domain), `search_terms` (the words of
a search-engine referrer) and `referrer_kind` (direct / search / email / social / other). What it leaves out: resolving
relative links against a base URL, internationalised domain names, and percent-decoding beyond what
`urllib.parse` does (the redactor decoded the text before it came here).
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, urlsplit

from clickintent.cache import BoundedCache

TRACKING_PARAMS = frozenset(
    {
        "gclid", "gbraid", "wbraid", "dclid", "fbclid", "msclkid", "yclid", "twclid", "ttclid", "li_fat_id",
        "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi", "igshid", "ref_src", "spm", "cmpid", "s_kwcid",
    }
)  # fmt: skip
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "vero_")
TEXT_PARAMS = frozenset({"q", "query", "search", "s", "term", "keyword", "keywords", "text"})

_NUM = re.compile(r"^\d+$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_HEX = re.compile(r"^[0-9a-fA-F]{12,}$")
_TOKEN = re.compile(r"^(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{16,}$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _placeholder(segment: str) -> str:
    if _NUM.match(segment):
        return "{num}"
    if _UUID.match(segment):
        return "{uuid}"
    if _HEX.match(segment) or _TOKEN.match(segment):
        return "{id}"
    return segment


def is_tracking_param(key: str) -> bool:
    k = key.lower()
    return k in TRACKING_PARAMS or k.startswith(TRACKING_PREFIXES)


CACHE_ITEMS = 262_144
CACHE_BYTES = 32 << 20  # per process: ~100,000 URLs of 100 chars; 8 KB hostile ones cannot grow it further
_cache: BoundedCache[str, str] = BoundedCache(CACHE_ITEMS, CACHE_BYTES)


def normalize_url(url: str) -> str:
    """The page id for `url` (see the module docstring)."""
    got = _cache.get(url)
    return got if got is not None else _cache.put(url, _normalize(url))


def is_page_key(value: str) -> bool:
    """True for a value with no '/' and no '.' (e.g. a YOOCHOOSE item id): an opaque page key, not a URL."""
    return "/" not in value and "." not in value


def split_url(url: str) -> SplitResult:
    """`urlsplit`, reading a scheme-less 'bank.com/x' as host + path. Raises ValueError as urlsplit does
    (e.g. for a host redacted to '[EMAIL]': brackets mean IPv6 to urlsplit)."""
    return urlsplit(url if "//" in url or url.startswith("/") else "//" + url)


def _normalize(url: str) -> str:
    url = url.strip()
    if is_page_key(url):
        return url
    try:
        parts = split_url(url)
    except ValueError:  # e.g. an invalid IPv6 literal: fall back to the text before any query
        return url.split("#", 1)[0].split("?", 1)[0]
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    segments = [_placeholder(s) for s in parts.path.split("/") if s]
    path = "/" + "/".join(segments)
    params = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if is_tracking_param(key):
            continue
        params.append((key, "{text}" if key.lower() in TEXT_PARAMS and value else _placeholder(value)))
    query = "&".join(f"{k}={v}" for k, v in sorted(params))
    return f"{host}{path}" + (f"?{query}" if query else "")


# --- reading URLs for the encoder (clickintent.encoder.featurize) --------------------------------------

REFERRER_CLASSES = ("direct", "search", "email", "social", "internal", "other")  # ids 1..6
SEARCH_ENGINES = ("google", "bing", "yahoo", "duckduckgo", "baidu", "yandex", "ecosia", "ask", "aol", "search")
EMAIL_HINTS = ("mail", "newsletter", "outlook", "email", "e-mail", "mailchimp", "sendgrid", "campaign")
SOCIAL_SITES = (
    "facebook", "fb.com", "instagram", "twitter", "t.co", "x.com", "linkedin", "lnkd.in", "reddit",
    "youtube", "tiktok", "pinterest", "snapchat", "whatsapp", "social",
)  # fmt: skip
SEARCH_TERM_PARAMS = ("q", "query", "p", "text", "wd", "search", "k")

_SPLIT = re.compile(r"[-_.+~%,;:]+")


def url_tokens(page: str, max_tokens: int) -> list[str]:
    """Tokens of a (normalised) URL: host, each path segment, the words inside segments, query keys."""
    if is_page_key(page):
        return [f"key:{page}"]
    try:
        parts = split_url(page)
        host = (parts.hostname or "").removeprefix("www.")
    except ValueError:
        return [f"key:{page}"]
    tokens: list[str] = []
    if host:
        tokens.append(f"host:{host}")
    segments = [s for s in parts.path.lower().split("/") if s]
    for depth, seg in enumerate(segments):
        tokens.append(f"seg:{seg}")
        if depth == 0:
            tokens.append(f"top:{seg}")  # the site section, weighted a little more
        words = [w for w in _SPLIT.split(seg) if w]
        if len(words) > 1:
            tokens.extend(f"w:{w}" for w in words)
    if not segments:
        tokens.append("seg:/")
    for pair in parts.query.split("&"):
        if pair:
            tokens.append(f"q:{pair.split('=', 1)[0].lower()}")
    return tokens[:max_tokens]


def hostname(url: str) -> str:
    """The lower-case host of a URL without 'www.' ('' for opaque keys and labels such as 'google')."""
    if is_page_key(url):
        return ""
    try:
        host = split_url(url).hostname or ""
    except ValueError:
        return ""
    return host.lower().removeprefix("www.")


def site(url: str) -> str:
    """The site of a URL: a crude registered domain (last two labels, three for e.g. bank.co.uk)."""
    labels = hostname(url).split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and len(labels[-2]) <= 3 else 2
    return ".".join(labels[-keep:])


def search_terms(referrer: str) -> str:
    """The search words in a search-engine referrer URL (`?q=...`), or ''."""
    try:
        query = urlsplit(referrer).query
    except ValueError:
        return ""
    for key, value in parse_qsl(query):
        if key.lower() in SEARCH_TERM_PARAMS and value.strip():
            return value.strip()
    return ""


def referrer_kind(referrer: str | None) -> str:
    """The external class of a referrer URL or label; 'internal' (same site as the event) is decided by the
    featurizer, which knows the event's URL."""
    if referrer is None or not referrer.strip() or referrer.strip().lower() in ("direct", "none", "(direct)"):
        return "direct"
    text = referrer.strip().lower()
    host = hostname(text) or text
    if "utm_medium=email" in text or any(h in host for h in EMAIL_HINTS):
        return "email"
    if any(s in host for s in SEARCH_ENGINES):
        return "search"
    if any(host == s or host.endswith("." + s) or s in host.split(".") for s in SOCIAL_SITES):
        return "social"
    return "other"
