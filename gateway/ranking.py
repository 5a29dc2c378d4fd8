"""Committed ensemble versions held in memory: every page, order and filter of a version from one read.

A version's rows never change once its ``ensemble_batches`` row (the commit marker) is in the
warehouse and every row it counts has arrived, so the gateway reads them once, keeps each row's
JSON encoded and its sort keys as arrays, and answers any page from memory. Versions that are
not complete yet, or larger than the budget, are not kept (the caller reads the warehouse).

    rankings = RankingCache(budget_bytes=256 << 20)
    ranking = await rankings.get(key, expected_rows, load)      # None: not kept, read SQL instead
    rows, total = ranking.page(order, min_score, page)
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from gateway.params import Order, Page

Key = tuple[str, str, Any, int]  # kind, network, processing_date, version
_SKIPPED_KEYS = 1024
_ROW_OVERHEAD = 64  # bytes a kept row costs beyond its JSON (fragment object, list slot, sort keys)


@dataclass(slots=True)
class VersionRanking:
    """The rows of one version in id order, their JSON, and lazily built orderings.

    ranking = VersionRanking.of(rows, "alert_id", encode)
    fragments, total = ranking.page(Order("rank", False), 0.0, Page(100, 0))
    """

    fragments: list[orjson.Fragment]
    scores: npt.NDArray[np.float64]
    ranks: npt.NDArray[np.int64]
    size_bytes: int
    has_nan: bool = False
    _orders: dict[tuple[str, bool], npt.NDArray[np.int64]] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: Sequence[dict[str, Any]], encode: Callable[[Any], bytes]) -> VersionRanking:
        """``rows`` sorted by id ascending (the warehouse's order), each already in the answer's shape."""
        encoded = [encode(r) for r in rows]
        size = sum(len(e) for e in encoded) + _ROW_OVERHEAD * len(encoded)
        scores = np.fromiter((r["ensemble_score"] for r in rows), np.float64, len(rows))
        ranks = np.fromiter((r["rank"] for r in rows), np.int64, len(rows))
        return cls([orjson.Fragment(e) for e in encoded], scores, ranks, size, bool(np.isnan(scores).any()))

    def __len__(self) -> int:
        return len(self.fragments)

    def order(self, order: Order) -> npt.NDArray[np.int64]:
        """Row positions in the order SQL's ``ORDER BY field [DESC], id ASC`` gives."""
        key = (order.field, order.descending)
        found = self._orders.get(key)
        if found is not None:
            return found
        ids = np.arange(len(self), dtype=np.int64)  # rows are in id order: position = id order
        if order.field == "id":
            found = ids[::-1].copy() if order.descending else ids
        else:
            values = self.scores if order.field == "score" else self.ranks.astype(np.float64)
            found = np.lexsort((ids, -values if order.descending else values)).astype(np.int64)
        self._orders[key] = found
        return found

    def page(self, order: Order, min_score: float, page: Page) -> tuple[list[orjson.Fragment], int]:
        """The page's rows (encoded) and how many rows pass ``min_score`` in all."""
        positions = self.order(order)
        if min_score > 0.0 or self.has_nan:  # scores are in [0, 1]: ">= 0" drops only NaN
            positions = positions[self.scores[positions] >= min_score]
        chosen = positions[page.offset : page.offset + page.limit]
        return [self.fragments[i] for i in chosen], len(positions)


class RankingCache:
    """Complete versions within a memory budget, least recently used evicted first; one load per version.

    rankings = RankingCache(budget_bytes=256 << 20)
    ranking = await rankings.get(("alert", "ethereum", day, 3), 10_000, load)
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.loads = 0
        self._kept: OrderedDict[Key, VersionRanking] = OrderedDict()
        self._skipped: OrderedDict[Key, None] = OrderedDict()  # incomplete or over budget when loaded
        self._loading: dict[Key, asyncio.Future[VersionRanking]] = {}
        self._status: OrderedDict[Any, tuple[int, Any]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.budget_bytes > 0

    @property
    def kept_bytes(self) -> int:
        return sum(r.size_bytes for r in self._kept.values())

    async def get(
        self, key: Key, expected_rows: int, load: Callable[[], Awaitable[VersionRanking]]
    ) -> VersionRanking | None:
        """The version's ranking, loaded once; ``None`` when the cache is off or will not keep this version."""
        if not self.enabled or key in self._skipped:
            return None
        found = self._kept.get(key)
        if found is not None:
            self._kept.move_to_end(key)
            return found
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[VersionRanking] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            ranking = await load()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # marked retrieved: the waiters re-raise it
            raise
        else:
            future.set_result(ranking)
            self.loads += 1
            if len(ranking) == expected_rows and ranking.size_bytes <= self.budget_bytes:
                self._keep(key, ranking)
            else:  # rows still arriving (a marker forced at its timeout) or too large: SQL from now on
                self._skipped[key] = None
                while len(self._skipped) > _SKIPPED_KEYS:
                    self._skipped.popitem(last=False)
            return ranking
        finally:
            del self._loading[key]

    async def status(self, key: Any, stamp: int | None, load: Callable[[], Awaitable[Any]]) -> Any:
        """``load()``'s answer, reused while ``stamp`` (the answer cache's warehouse stamp) is unchanged.

        Which version is committed changes only when the warehouse does: with the sink in the
        process the stamp is its write generation (exact); with the sink elsewhere it is the
        answer cache's time-to-live window, the staleness every cached answer already has.
        """
        if not self.enabled or stamp is None:
            return await load()
        found = self._status.get(key)
        if found is not None and found[0] == stamp:
            return found[1]
        value = await load()
        self._status[key] = (stamp, value)
        self._status.move_to_end(key)
        while len(self._status) > _SKIPPED_KEYS:
            self._status.popitem(last=False)
        return value

    def _keep(self, key: Key, ranking: VersionRanking) -> None:
        self._kept[key] = ranking
        while self.kept_bytes > self.budget_bytes:
            self._kept.popitem(last=False)
