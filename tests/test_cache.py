"""BoundedCache: least recently used out, bounded by entries and by the bytes CPython really holds."""

from __future__ import annotations

import threading
import tracemalloc

import pytest

from clickintent.cache import BoundedCache


def test_least_recently_used_goes_first() -> None:
    c: BoundedCache[str, int] = BoundedCache(3, 1 << 20)
    for k in "abc":
        c.put(k, 1)
    assert c.get("a") == 1  # a is now the most recent
    c.put("d", 1)
    assert "b" not in c and all(k in c for k in "acd") and len(c) == 3


def test_bytes_bound_and_oversized_entries() -> None:
    c: BoundedCache[str, str] = BoundedCache(10**6, 100_000)
    for i in range(1000):
        c.put(f"key-{i}", "v" * 1000)
    assert c.nbytes <= 100_000 and 50 < len(c) < 100
    assert c.put("huge", "x" * 200_000) == "x" * 200_000 and "huge" not in c  # returned, never stored
    c.put("key-999", "short")  # replacing an entry gives its bytes back
    assert c.nbytes <= 100_000
    c.clear()
    assert c.nbytes == 0 and len(c) == 0
    with pytest.raises(ValueError):
        BoundedCache(0, 10)


@pytest.mark.parametrize("text", ["ascii page id", "カード — بطاقات — 💳"])
def test_counted_bytes_are_what_is_held(text: str) -> None:
    cap = 2 << 20
    c: BoundedCache[str, str] = BoundedCache(10**6, cap)
    tracemalloc.start()
    try:
        for i in range(20_000):
            c.put(f"{text} {i}" * 3, f"{text}/{i}")
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert c.nbytes <= cap and 0.6 * c.nbytes <= held <= 1.1 * cap


def test_threads_keep_the_count_right() -> None:
    c: BoundedCache[int, int] = BoundedCache(500, 1 << 20)

    def work(base: int) -> None:
        for i in range(5000):
            c.put(base + i % 800, i)
            c.get(base + (i * 7) % 800)

    threads = [threading.Thread(target=work, args=(b * 1000,)) for b in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(c) <= 500 and c.nbytes == sum(c.size(k, v) for k, (v, _) in c._data.items())
