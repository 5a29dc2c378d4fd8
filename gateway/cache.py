"""Encoded answers kept, within a byte budget, until the warehouse changes (in-process sink) or for a TTL.

Keys are built from the *parsed* request (route and normalised parameter values), never from
the raw query string, so junk parameters cannot multiply the entries; a new stamp (the sink
inserted rows or wrote a batch marker, or the TTL passed) drops every older answer at once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

ENTRY_OVERHEAD = 200  # bytes per entry beyond the body: key, tuple, dict slot


class AnswerCache:
    """An LRU of response bodies bounded by bytes, stamped with the warehouse generation they were read at.

    cache = AnswerCache(256 << 20, generation=lambda: sink.stats.generation)
    stamp = cache.stamp(); body = cache.get(key, stamp) or build(); cache.put(key, stamp, body)
    """

    def __init__(self, max_bytes: int, *, generation: Callable[[], int] | None = None, ttl_s: float = 2.0) -> None:
        self.max_bytes = max_bytes
        self._generation = generation
        self._ttl_s = ttl_s
        self._bodies: OrderedDict[str, bytes] = OrderedDict()
        self._stamp: int | None = None  # the stamp every kept body was read at
        self.size = 0  # bytes held, overhead included
        self.evictions = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0 and (self._generation is not None or self._ttl_s > 0)

    @property
    def entries(self) -> int:
        return len(self._bodies)

    @property
    def stamped(self) -> bool:
        """Whether stamps change when the warehouse may have (a generation, or a time-to-live)."""
        return self._generation is not None or self._ttl_s > 0

    def stamp(self) -> int:
        """Read before querying: an answer built from older data must not outlive a newer insert."""
        if self._generation is not None:
            return self._generation()
        return int(time.monotonic() / self._ttl_s) if self._ttl_s > 0 else 0

    def _expire(self, stamp: int) -> None:
        if stamp != self._stamp:
            self._bodies.clear()
            self.size = 0
            self._stamp = stamp

    def get(self, key: str, stamp: int) -> bytes | None:
        if not self.enabled:
            return None
        self._expire(stamp)
        found = self._bodies.get(key)
        if found is not None:
            self._bodies.move_to_end(key)
        return found

    def put(self, key: str, stamp: int, body: bytes) -> None:
        cost = len(body) + len(key) + ENTRY_OVERHEAD
        if not self.enabled or stamp != self.stamp() or cost > self.max_bytes:
            return
        self._expire(stamp)
        old = self._bodies.pop(key, None)
        if old is not None:
            self.size -= len(old) + len(key) + ENTRY_OVERHEAD
        self._bodies[key] = body
        self.size += cost
        while self.size > self.max_bytes:
            evicted_key, evicted = self._bodies.popitem(last=False)
            self.size -= len(evicted) + len(evicted_key) + ENTRY_OVERHEAD
            self.evictions += 1
