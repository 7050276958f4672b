"""URL normalisation: turn a raw (already redacted) URL into a stable page id.

`normalize_url("https://WWW.Bank.com/apply/step-2?appId=88121&utm_source=x#top")` gives
``www.bank.com/apply/step-2?appId={num}``: lower-case host, no scheme, default port or fragment,
tracking parameters dropped, remaining parameters sorted, and ids (numbers, UUIDs, long hex or
token-like strings) replaced by placeholders in the path and in parameter values. Free-text
parameters (``q=``, ``query=``, ...) become ``{text}``: the text itself lives in `search_query`.

Values without a '/' or a '.' (for example the item ids of the YOOCHOOSE sample) are opaque keys
and come back unchanged. Results are cached (`CACHE_ITEMS` entries, `CACHE_BYTES` bytes, least
recently used first out: clickintent.cache), since a site's URLs repeat. The input must already be
redacted and decoded (clickintent.pii); the cache then never holds PII. What it leaves out: resolving
relative links against a base URL, internationalised domain names, and percent-decoding beyond what
`urllib.parse` does (the redactor decoded the text before it came here).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

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


def _normalize(url: str) -> str:
    url = url.strip()
    if "/" not in url and "." not in url:
        return url  # an opaque key, not a URL
    try:
        parts = urlsplit(url if "//" in url or url.startswith("/") else "//" + url)
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
