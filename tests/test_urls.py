"""URL normalisation: one page id per page, whatever the ids, tracking parameters and case."""

from __future__ import annotations

import pytest

from clickintent.urls import normalize_url


def test_application_ids_make_one_page() -> None:
    a = normalize_url("https://www.bank.com/apply/step-2?appId=88121")
    b = normalize_url("https://www.bank.com/apply/step-2?appId=90412")
    assert a == b == "www.bank.com/apply/step-2?appId={num}"


@pytest.mark.parametrize(
    ("raw", "page"),
    [
        ("HTTPS://WWW.Bank.COM/Cards/?utm_source=google&gclid=abc#reviews", "www.bank.com/Cards"),
        ("https://bank.com:443/accounts/12345/statements", "bank.com/accounts/{num}/statements"),
        ("http://bank.com:8080/x", "bank.com:8080/x"),
        ("https://bank.com/doc/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "bank.com/doc/{uuid}"),
        ("https://bank.com/search?q=credit+cards&page=2", "bank.com/search?page={num}&q={text}"),
        ("https://bank.com/x?b=2&a=1&fbclid=zz&utm_medium=email", "bank.com/x?a={num}&b={num}"),
        ("/savings/cd-rates", "/savings/cd-rates"),
        ("bank.com/savings", "bank.com/savings"),
        ("214716935", "214716935"),  # an opaque item id (YOOCHOOSE), not a URL
    ],
)
def test_normalize(raw: str, page: str) -> None:
    assert normalize_url(raw) == page


def test_idempotent() -> None:
    for raw in ("https://bank.com/a/123?x=1&utm_source=y", "/a/b", "https://bank.com/"):
        once = normalize_url(raw)
        assert normalize_url(once) == once
