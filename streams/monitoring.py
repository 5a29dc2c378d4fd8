"""Prometheus for every service: the ``/metrics`` route and a producer that counts what it sends.

Each service declares its own metrics (prometheus-client ``Counter``/``Gauge``/``Histogram``) in
its ``monitoring.py``; services without a web framework serve them beside ``/health`` on their
``HealthServer`` (``health_port``), so one announced URL answers both.

    routes = {"/health": health.http_answer, "/metrics": metrics_route()}
    producer = CountingProducer(BatchProducer(servers), RECORDS_OUT)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, generate_latest

from streams.health import Answer, Route


def metrics_route(registries: Sequence[CollectorRegistry] = (REGISTRY,)) -> Route:
    """A ``HealthServer`` route answering the Prometheus text format of ``registries`` (default: the process's)."""

    async def answer() -> Answer:
        return 200, CONTENT_TYPE_LATEST, b"".join(generate_latest(registry) for registry in registries)

    return answer


class CountingProducer:
    """Wraps a producer: every record sent is counted in ``counter`` by topic; ``on_send`` may look at it."""

    def __init__(
        self,
        inner: Any,
        counter: Counter,
        on_send: Callable[[str, bytes | str | None, bytes | None], None] | None = None,
    ) -> None:
        self.inner = inner
        self.counter = counter
        self.on_send = on_send
        self._by_topic: dict[str, Any] = {}  # the counter's child per topic (``labels`` costs more than ``inc``)

    def send(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        self.inner.send(topic, key, value, headers=headers)
        child = self._by_topic.get(topic)
        if child is None:
            child = self._by_topic[topic] = self.counter.labels(topic)
        child.inc()
        if self.on_send is not None:
            self.on_send(topic, key, value)

    def flush(self, timeout: float = 60.0) -> None:
        self.inner.flush(timeout)
