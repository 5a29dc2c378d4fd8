"""Rate-limited logging for retry loops: one line per message template per interval, with a count.

A service that cannot reach the broker retries forever; without a limit its log grows by
megabytes a minute (librdkafka reports every failed connection attempt).

    rate_limit(logging.getLogger("aiokafka"), interval_s=30)
    log.warning("broker %s unreachable", servers)   # at most once per 30 s, then "(N more)"
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class RateLimitFilter(logging.Filter):
    """Lets a record through once per ``interval_s`` per (logger, level, template); counts the rest."""

    def __init__(self, interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        with self._lock:
            last, suppressed = self._seen.get(key, (float("-inf"), 0))
            if now - last < self.interval_s:
                self._seen[key] = (last, suppressed + 1)
                return False
            self._seen[key] = (now, 0)
            if len(self._seen) > 10_000:  # templates with data in them: do not grow without bound
                self._seen.clear()
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} similar messages suppressed in the last {self.interval_s:.0f}s)"
        return True


def rate_limit(logger: logging.Logger, interval_s: float = 30.0) -> RateLimitFilter:
    """Attach one rate limit to ``logger`` (idempotent: the existing filter is returned)."""
    for existing in logger.filters:
        if isinstance(existing, RateLimitFilter):
            return existing
    found = RateLimitFilter(interval_s)
    logger.addFilter(found)
    return found


# the loggers of the client libraries' reconnect loops
RETRY_LOGGERS = (
    "aiokafka",
    "aiokafka.client",
    "aiokafka.cluster",
    "aiokafka.conn",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.sender",
    "faust.transport.drivers.aiokafka",
    "mode.services",
)


def rate_limit_client_logs(interval_s: float = 30.0) -> None:
    """Rate-limit the Kafka client libraries' own loggers (call once at a service's edge)."""
    for name in RETRY_LOGGERS:
        rate_limit(logging.getLogger(name), interval_s)
