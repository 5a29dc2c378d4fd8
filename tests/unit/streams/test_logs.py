"""Rate-limited logs: one line per template per interval, and a count of what was held back."""

from __future__ import annotations

import logging

import pytest

from streams.logs import RateLimitFilter


def test_repeats_are_held_back_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = logging.getLogger("test.ratelimit")
    log.addFilter(RateLimitFilter(30.0, clock=lambda: now[0]))
    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        for attempt in range(100):
            log.warning("broker %s unreachable (attempt %d)", "127.0.0.1:9", attempt)
        log.error("another problem")
        now[0] = 31.0
        log.warning("broker %s unreachable (attempt %d)", "127.0.0.1:9", 100)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "broker 127.0.0.1:9 unreachable (attempt 0)",
        "another problem",
        "broker 127.0.0.1:9 unreachable (attempt 100) (99 similar messages suppressed in the last 30s)",
    ]
