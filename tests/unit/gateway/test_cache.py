"""The answer cache: bounded by bytes, answers live until the warehouse generation changes, or for a TTL."""

from __future__ import annotations

import time

from gateway.cache import ENTRY_OVERHEAD, AnswerCache


def test_generation_invalidates_every_older_answer_at_once() -> None:
    generation = [0]
    cache = AnswerCache(10_000, generation=lambda: generation[0])
    stamp = cache.stamp()
    cache.put("/a", stamp, b"one")
    cache.put("/b", stamp, b"two")
    assert cache.get("/a", cache.stamp()) == b"one"
    generation[0] += 1
    assert cache.get("/a", cache.stamp()) is None
    assert cache.entries == 0 and cache.size == 0  # the memory is released, not just hidden


def test_an_answer_read_before_an_insert_is_not_kept() -> None:
    generation = [0]
    cache = AnswerCache(10_000, generation=lambda: generation[0])
    stamp = cache.stamp()
    generation[0] += 1  # the sink inserted while the answer was being built
    cache.put("/a", stamp, b"stale")
    assert cache.get("/a", cache.stamp()) is None


def test_bytes_bound_evicts_least_recently_used() -> None:
    body = b"x" * 1000
    cache = AnswerCache(2 * (1000 + 2 + ENTRY_OVERHEAD), generation=lambda: 0)
    cache.put("/a", 0, body)
    cache.put("/b", 0, body)
    assert cache.get("/a", 0) == body
    cache.put("/c", 0, body)
    assert cache.get("/b", 0) is None
    assert cache.get("/a", 0) == body and cache.get("/c", 0) == body
    assert cache.size <= cache.max_bytes and cache.evictions == 1


def test_many_distinct_answers_stay_within_the_budget() -> None:
    cache = AnswerCache(1 << 20, generation=lambda: 0)
    for i in range(2000):
        cache.put(f"/day/{i}", 0, bytes(10_000))
    assert cache.size <= 1 << 20
    assert cache.entries == (1 << 20) // (10_000 + len("/day/1000") + ENTRY_OVERHEAD)


def test_an_answer_larger_than_the_budget_is_not_kept() -> None:
    cache = AnswerCache(1000, generation=lambda: 0)
    cache.put("/big", 0, bytes(5000))
    assert cache.get("/big", 0) is None and cache.size == 0


def test_replacing_an_entry_keeps_the_accounting() -> None:
    cache = AnswerCache(10_000, generation=lambda: 0)
    cache.put("/a", 0, b"12345")
    cache.put("/a", 0, b"123")
    assert cache.size == 3 + 2 + ENTRY_OVERHEAD


def test_ttl_and_disabled() -> None:
    cache = AnswerCache(10_000, ttl_s=0.05)
    cache.put("/a", cache.stamp(), b"a")
    assert cache.get("/a", cache.stamp()) == b"a"
    time.sleep(0.12)
    assert cache.get("/a", cache.stamp()) is None
    off = AnswerCache(0, generation=lambda: 0)
    off.put("/a", 0, b"a")
    assert off.get("/a", 0) is None and not off.enabled
    assert not AnswerCache(10_000, ttl_s=0).enabled
