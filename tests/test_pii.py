"""PII redaction: what is redacted never survives, ordinary text comes through unchanged."""

from __future__ import annotations

import string
from collections import Counter

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clickintent.pii import PREFILTER, luhn_ok, redact, redact_array, redact_counts

SAFE_ALPHABET = string.ascii_letters + " ,.!?'\"()-:/_&"
safe_text = st.text(alphabet=SAFE_ALPHABET, max_size=40)
# Ordinary text may hold short numbers (years, amounts, "top 10"), each after a word: "Top 10 cards 2024".
word = st.text(alphabet=string.ascii_letters + ",.!?'", min_size=1, max_size=12)
number = st.one_of(st.just(""), st.integers(0, 9999).map(lambda n: f" {n}"))
ordinary = st.lists(st.tuples(word, number).map("".join), max_size=8).map(" ".join)


def luhn_number(prefix: str, length: int) -> str:
    body = prefix + "7" * (length - len(prefix) - 1)
    return next(body + str(d) for d in range(10) if luhn_ok(body + str(d)))


emails = st.from_regex(r"[a-z][a-z0-9._]{0,10}@[a-z]{2,8}\.(com|org|co\.uk)", fullmatch=True)
cards = st.sampled_from(["4", "51", "37", "6011"]).flatmap(
    lambda p: st.integers(15, 16).map(lambda n: luhn_number(p, n))
)
ssns = st.from_regex(r"[1-5][0-9]{2}-[1-9][0-9]-[1-9][0-9]{3}", fullmatch=True)
phones = st.from_regex(r"\([2-9][0-9]{2}\) [2-9][0-9]{2}-[0-9]{4}|\+44 20 [0-9]{4} [0-9]{4}", fullmatch=True)
accounts = st.from_regex(r"[1-9][0-9]{9,11}", fullmatch=True)
secrets = st.from_regex(r"[A-Za-z0-9]{12,30}", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(prefix=safe_text, suffix=safe_text, pii=st.one_of(emails, cards, ssns, phones, accounts))
def test_redacted_text_never_contains_the_pii(prefix: str, suffix: str, pii: str) -> None:
    out = redact(f"{prefix} {pii} {suffix}")
    assert pii not in out
    assert "[" in out


@settings(max_examples=100, deadline=None)
@given(key=st.sampled_from(["token", "password", "session", "auth", "api_key", "access_token"]), value=secrets)
def test_secrets_in_query_strings_are_redacted(key: str, value: str) -> None:
    url = f"https://bank.example/cb?step=2&{key}={value}&lang=en"
    out = redact(url)
    assert value not in out
    assert f"{key}=[SECRET]" in out and "step=2" in out and "lang=en" in out


@settings(max_examples=200, deadline=None)
@given(text=ordinary)
def test_ordinary_text_comes_through_unchanged(text: str) -> None:
    assert redact(text) == text


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60))
def test_prefilter_is_a_superset_of_the_patterns(text: str) -> None:
    import re

    if not re.search(PREFILTER, text):
        assert redact(text) == text


def test_card_numbers_need_the_luhn_check() -> None:
    assert redact("card 4111 1111 1111 1111 ok") == "card [CARD] ok"
    # 16 digits that fail Luhn: a product code, kept
    assert redact("product 4111-1111-1111-1112") == "product 4111-1111-1111-1112"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("mail me: jane.doe+x@example.co.uk", "email"),
        ("?email=jane%40example.com", "secret"),
        ("ssn 123-45-6789", "ssn"),
        ("call (555) 123-4567", "phone"),
        ("call +44 20 7946 0958", "phone"),
        ("acct 000123456789", "account"),
        ("account number 12345678", "account"),
        ("Authorization: Bearer abcdefghijklmnop123", "secret"),
        ("id eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4f", "secret"),
    ],
)
def test_each_kind_is_counted(text: str, kind: str) -> None:
    clean, counts = redact_counts(text)
    assert counts[kind] >= 1, (clean, counts)


def test_redact_array_matches_redact_and_counts_per_row() -> None:
    values = ["plain title", "bob@x.com", None, "bob@x.com", "call 555-123-4567", "Top 10 cards 2024"]
    counts: Counter[str] = Counter()
    out = redact_array(pa.array(values), counts).to_pylist()
    assert out == [None if v is None else redact(v) for v in values]
    assert counts == Counter({"email": 2, "phone": 1})


@pytest.mark.parametrize("sep", [" ", "-", "+", "%20"])
def test_card_numbers_with_url_encoded_separators(sep: str) -> None:
    number = sep.join(["4111", "1111", "1111", "1111"])
    assert "4111" not in redact(f"/search?q=lost+card+{number}&x=1")
    assert "4111" not in redact(f"lost card {number}")
