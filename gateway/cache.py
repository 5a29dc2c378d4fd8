"""Encoded answers kept until the warehouse changes (in-process sink) or for a short time (remote sink)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class AnswerCache:
    """An LRU of response bodies stamped with the warehouse generation they were read at.

    cache = AnswerCache(512, generation=lambda: sink.stats.generation)
    stamp = cache.stamp(); body = cache.get(key, stamp) or build(); cache.put(key, stamp, body)
    """

    def __init__(self, entries: int, *, generation: Callable[[], int] | None = None, ttl_s: float = 2.0) -> None:
        self.entries = entries
        self._generation = generation
        self._ttl_s = ttl_s
        self._bodies: OrderedDict[str, tuple[int, bytes]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.entries > 0 and (self._generation is not None or self._ttl_s > 0)

    def stamp(self) -> int:
        """Read before querying: an answer built from older data must not outlive a newer insert."""
        if self._generation is not None:
            return self._generation()
        return int(time.monotonic() / self._ttl_s) if self._ttl_s > 0 else 0

    def get(self, key: str, stamp: int) -> bytes | None:
        if not self.enabled:
            return None
        found = self._bodies.get(key)
        if found is None or found[0] != stamp:
            return None
        self._bodies.move_to_end(key)
        return found[1]

    def put(self, key: str, stamp: int, body: bytes) -> None:
        if not self.enabled or stamp != self.stamp():
            return
        self._bodies[key] = (stamp, body)
        self._bodies.move_to_end(key)
        while len(self._bodies) > self.entries:
            self._bodies.popitem(last=False)
