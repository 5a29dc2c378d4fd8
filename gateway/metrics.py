"""The gateway's Prometheus metrics: requests by route and status, latency, and the answer cache.

metrics = GatewayMetrics()
metrics.observe("/health", 200, 0.002)
body = metrics.render()                      # the Prometheus text format, from prometheus-client
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class GatewayMetrics:
    """One registry per app (several apps may share a process in tests), with the process's own figures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        self.requests = Counter(
            "riskstream_gateway_requests", "HTTP requests by route and status.", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "riskstream_gateway_request_seconds", "Request latency by route.", ["route"], buckets=BUCKETS, registry=r
        )
        self.cache = Counter(
            "riskstream_gateway_cache",
            "Answers served from the cache (hit) or the warehouse (miss).",
            ["result"],
            registry=r,
        )
        self.cache_hits = self.cache.labels("hit")
        self.cache_misses = self.cache.labels("miss")

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
