"""Vectorised string building for the simulator: ids, URLs, tokens and PII bait, all as Arrow arrays.

Generation never formats a string per event in Python: it takes from small vocabularies and joins Arrow
arrays element-wise (`pyarrow.compute`). Ids are bijective scrambles of integer keys, so they look random
but can never collide. Not a general URL library: `urlencode` only handles the characters the simulator's
own vocabularies contain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ALNUM = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)
NULL_STR = pa.scalar(None, pa.string())

StrLike: TypeAlias = pa.Array | pa.ChunkedArray | pa.Scalar | str


def cat(*parts: StrLike) -> pa.Array:
    """Element-wise concatenation of string arrays and/or plain strings (null if any part is null)."""
    return pc.binary_join_element_wise(*parts, "")


def take(vocab: Sequence[str | None], idx: np.ndarray) -> pa.Array:
    """vocab[idx] as an Arrow string array."""
    return pa.array(list(vocab), pa.string()).take(pa.array(np.asarray(idx, dtype=np.int64)))


def scramble(keys: np.ndarray, modulus: int, mult: int, add: int) -> np.ndarray:
    """A bijection of [0, modulus) (mult coprime to modulus): distinct keys give distinct ids."""
    keys = np.asarray(keys, dtype=np.int64)
    if keys.size and (keys.max() >= modulus or keys.max() * mult >= 2**62):
        raise ValueError("id key out of range for the scramble")
    return (keys * mult + add) % modulus


def digits(values: np.ndarray, width: int) -> pa.Array:
    """Integers as zero-padded decimal strings."""
    s = pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())
    return pc.utf8_lpad(s, width=width, padding="0")


def tokens(rng: np.random.Generator, n: int, length: int) -> pa.Array:
    """n random alphanumeric tokens of `length` characters."""
    chars = ALNUM[rng.integers(0, len(ALNUM), size=(n, length))]
    return pa.array(np.ascontiguousarray(chars).view(f"S{length}").ravel(), pa.binary()).cast(pa.string())


def urlencode(values: pa.Array) -> pa.Array:
    """Query-string encoding for the simulator's vocabularies (space, @, &, +, ', $, /, #)."""
    out = values
    for raw, enc in (
        ("%", "%25"),
        ("+", "%2B"),
        (" ", "+"),
        ("@", "%40"),
        ("&", "%26"),
        ("'", "%27"),
        ("$", "%24"),
        ("/", "%2F"),
        ("#", "%23"),
    ):
        out = pc.replace_substring(out, raw, enc)
    return out


def if_else(mask: np.ndarray, yes: StrLike, no: StrLike) -> pa.Array:
    """Element-wise choice between two string arrays/scalars."""
    return pc.if_else(pa.array(np.asarray(mask, dtype=bool)), yes, no)


FIRST = ("jane", "john", "maria", "wei", "ahmed", "olivia", "liam", "sofia", "noah", "ava", "lucas", "mia")
LAST = ("doe", "smith", "garcia", "chen", "khan", "johnson", "brown", "nguyen", "lopez", "patel")
DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "aol.com")
# Test card numbers (Luhn-valid, never issued to anyone).
CARDS = ("4111 1111 1111 1111", "5555 5555 5555 4444", "4012 8888 8888 1881", "3782 822463 10005")


def fake_emails(rng: np.random.Generator, n: int) -> pa.Array:
    """n fake e-mail addresses."""
    return cat(
        take(FIRST, rng.integers(0, len(FIRST), n)),
        ".",
        take(LAST, rng.integers(0, len(LAST), n)),
        digits(rng.integers(1, 99, n), 2),
        "@",
        take(DOMAINS, rng.integers(0, len(DOMAINS), n)),
    )


def fake_phones(rng: np.random.Generator, n: int) -> pa.Array:
    """n fake US phone numbers (555 exchange)."""
    return cat(digits(rng.integers(201, 990, n), 3), "-555-", digits(rng.integers(100, 10000, n), 4))


def pii_queries(rng: np.random.Generator, n: int) -> tuple[pa.Array, pa.Array]:
    """n search texts that carry PII, and the PII value itself (for truth/pii_bait.json)."""
    kind = rng.integers(0, 3, n)
    email, phone = fake_emails(rng, n), fake_phones(rng, n)
    card = take(CARDS, rng.integers(0, len(CARDS), n))
    value = pc.if_else(pa.array(kind == 0), email, pc.if_else(pa.array(kind == 1), phone, card))
    lead = take(("my email is ", "call me at ", "lost card "), kind)
    bare = rng.random(n) < 0.5  # half are the bare value typed into the box
    return if_else(bare, value, cat(lead, value)), value
