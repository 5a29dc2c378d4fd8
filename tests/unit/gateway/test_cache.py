"""The answer cache: answers live until the warehouse generation changes, or for a TTL."""

from __future__ import annotations

import time

from gateway.cache import AnswerCache


def test_generation_invalidates() -> None:
    generation = [0]
    cache = AnswerCache(10, generation=lambda: generation[0])
    stamp = cache.stamp()
    cache.put("/a", stamp, b"one")
    assert cache.get("/a", cache.stamp()) == b"one"
    generation[0] += 1
    assert cache.get("/a", cache.stamp()) is None


def test_an_answer_read_before_an_insert_is_not_kept() -> None:
    generation = [0]
    cache = AnswerCache(10, generation=lambda: generation[0])
    stamp = cache.stamp()
    generation[0] += 1  # the sink inserted while the answer was being built
    cache.put("/a", stamp, b"stale")
    assert cache.get("/a", cache.stamp()) is None


def test_least_recently_used_is_evicted() -> None:
    cache = AnswerCache(2, generation=lambda: 0)
    cache.put("/a", 0, b"a")
    cache.put("/b", 0, b"b")
    assert cache.get("/a", 0) == b"a"
    cache.put("/c", 0, b"c")
    assert cache.get("/b", 0) is None
    assert cache.get("/a", 0) == b"a" and cache.get("/c", 0) == b"c"


def test_ttl_and_disabled() -> None:
    cache = AnswerCache(10, ttl_s=0.05)
    cache.put("/a", cache.stamp(), b"a")
    assert cache.get("/a", cache.stamp()) == b"a"
    time.sleep(0.12)
    assert cache.get("/a", cache.stamp()) is None
    off = AnswerCache(0, generation=lambda: 0)
    off.put("/a", 0, b"a")
    assert off.get("/a", 0) is None and not off.enabled
    assert not AnswerCache(10, ttl_s=0).enabled
