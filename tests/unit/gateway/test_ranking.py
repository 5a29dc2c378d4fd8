"""Per-version rankings: every order, filter and page as SQL would give it; kept only when complete."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson
import pytest

from gateway.params import Order, Page
from gateway.ranking import RankingCache, VersionRanking


def _rows(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(n), 2)  # two decimals: many ties
    ids = sorted(f"a-{i:05d}" for i in rng.permutation(n))
    order = sorted(range(n), key=lambda i: (-scores[i], ids[i]))
    ranks = {i: r for r, i in enumerate(order, start=1)}
    return [
        {"alert_id": ids[i], "ensemble_score": float(scores[i]), "rank": ranks[i], "top_contributors": [["m1", 0.5]]}
        for i in range(n)
    ]


def _sql(rows: list[dict[str, Any]], order: Order, min_score: float, page: Page) -> tuple[list[dict[str, Any]], int]:
    """What ``ORDER BY field [DESC], alert_id ASC LIMIT .. OFFSET ..`` answers."""
    kept = [r for r in rows if r["ensemble_score"] >= min_score]
    if order.field == "id":
        kept.sort(key=lambda r: r["alert_id"], reverse=order.descending)
    else:
        column = "ensemble_score" if order.field == "score" else "rank"
        sign = -1 if order.descending else 1
        kept.sort(key=lambda r: (sign * r[column], r["alert_id"]))
    return kept[page.offset : page.offset + page.limit], len(kept)


@pytest.mark.parametrize("field", ["score", "rank", "id"])
@pytest.mark.parametrize("descending", [False, True])
def test_pages_match_sql_order_filter_and_count(field: Any, descending: bool) -> None:
    rows = _rows(500)
    ranking = VersionRanking.of(rows, orjson.dumps)
    for min_score in (0.0, 0.37, 0.99, 1.5):
        for page in (Page(10, 0), Page(7, 13), Page(1000, 0), Page(5, 495), Page(5, 10_000)):
            order = Order(field, descending)
            got, total = ranking.page(order, min_score, page)
            expected, expected_total = _sql(rows, order, min_score, page)
            assert total == expected_total
            assert orjson.dumps(got) == orjson.dumps(expected)


def test_a_page_is_encoded_exactly_as_the_rows_would_be() -> None:
    rows = _rows(50)
    ranking = VersionRanking.of(rows, orjson.dumps)
    got, _ = ranking.page(Order("id", False), 0.0, Page(50, 0))
    assert orjson.dumps({"ensemble_scores": got}) == orjson.dumps({"ensemble_scores": rows})


def test_one_load_per_version_even_when_requests_overlap() -> None:
    cache = RankingCache(1 << 20)
    loads = 0

    async def load() -> VersionRanking:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.05)
        return VersionRanking.of(_rows(20), orjson.dumps)

    async def main() -> list[VersionRanking | None]:
        key = ("alert", "ethereum", "2026-01-01", 1)
        first = await asyncio.gather(*(cache.get(key, 20, load) for _ in range(5)))
        return [*first, await cache.get(key, 20, load)]

    found = asyncio.run(main())
    assert loads == 1 and all(f is found[0] for f in found)


def test_incomplete_or_oversized_versions_are_served_once_then_left_to_sql() -> None:
    cache = RankingCache(1 << 20)

    async def load() -> VersionRanking:
        return VersionRanking.of(_rows(20), orjson.dumps)

    async def main() -> tuple[Any, Any, Any, Any]:
        short = ("alert", "ethereum", "2026-01-01", 1)
        first, again = await cache.get(short, 21, load), await cache.get(short, 21, load)
        tiny = RankingCache(100)
        big = ("alert", "ethereum", "2026-01-02", 1)
        return first, again, await tiny.get(big, 20, load), await tiny.get(big, 20, load)

    first, again, big_first, big_again = asyncio.run(main())
    assert first is not None and len(first) == 20 and again is None  # 20 rows of 21 counted: not kept
    assert big_first is not None and big_again is None
    assert RankingCache(0).enabled is False


def test_the_budget_evicts_the_least_recently_used_version() -> None:
    one = VersionRanking.of(_rows(100), orjson.dumps)
    cache = RankingCache(int(one.size_bytes * 2.5))

    async def load() -> VersionRanking:
        return VersionRanking.of(_rows(100), orjson.dumps)

    async def main() -> int:
        keys = [("alert", "ethereum", f"2026-01-0{d}", 1) for d in (1, 2, 3)]
        for key in [keys[0], keys[1], keys[0], keys[2], keys[0], keys[1]]:
            await cache.get(key, 100, load)
        return cache.loads

    assert asyncio.run(main()) == 4  # keys[1] was evicted by keys[2], read again; keys[0] stayed
    assert cache.kept_bytes <= cache.budget_bytes


def test_a_failed_load_reaches_every_waiter_and_is_retried() -> None:
    cache = RankingCache(1 << 20)
    calls = 0

    async def load() -> VersionRanking:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        if calls == 1:
            raise RuntimeError("warehouse down")
        return VersionRanking.of(_rows(5), orjson.dumps)

    async def main() -> Any:
        key = ("alert", "ethereum", "2026-01-01", 1)
        failed = await asyncio.gather(*(cache.get(key, 5, load) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(f, RuntimeError) for f in failed)
        return await cache.get(key, 5, load)

    assert asyncio.run(main()) is not None and calls == 2


def test_the_committed_status_is_read_again_only_when_the_stamp_moves() -> None:
    cache = RankingCache(1 << 20)
    reads = 0

    async def load() -> int:
        nonlocal reads
        reads += 1
        return reads

    async def main() -> list[int]:
        key = ("ethereum", None)
        return [
            await cache.status(key, 7, load),
            await cache.status(key, 7, load),  # same warehouse stamp: the same answer
            await cache.status(key, 8, load),  # the warehouse changed
            await cache.status(key, None, load),  # no stamp (no generation, no time-to-live): always read
            await RankingCache(0).status(key, 8, load),  # cache off: always read
        ]

    assert asyncio.run(main()) == [1, 1, 2, 3, 4]
