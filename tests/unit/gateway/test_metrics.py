"""The gateway's /metrics is prometheus-client output that a Prometheus parser reads back."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import GatewayMetrics


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_requests_latency_and_cache_parse_back() -> None:
    metrics = GatewayMetrics()
    metrics.observe("/health", 200, 0.0007)
    metrics.observe("/health", 200, 0.03)
    metrics.observe('/x"y', 404, 9.0)
    metrics.cache_hits.inc()
    metrics.cache_misses.inc(2)
    text = metrics.render().decode()
    samples = _samples(text)
    assert samples[("riskstream_gateway_requests_total", frozenset({("route", "/health"), ("status", "200")}))] == 2
    bucket = "riskstream_gateway_request_seconds_bucket"
    assert samples[(bucket, frozenset({("route", "/health"), ("le", "0.001")}))] == 1
    assert samples[(bucket, frozenset({("route", "/health"), ("le", "0.05")}))] == 2
    assert samples[(bucket, frozenset({("route", "/health"), ("le", "+Inf")}))] == 2
    assert samples[(bucket, frozenset({("route", '/x"y'), ("le", "5.0")}))] == 0
    assert samples[("riskstream_gateway_request_seconds_count", frozenset({("route", '/x"y')}))] == 1
    assert samples[("riskstream_gateway_cache_total", frozenset({("result", "hit")}))] == 1
    assert samples[("riskstream_gateway_cache_total", frozenset({("result", "miss")}))] == 2
    assert "process_resident_memory_bytes" in text or "process_cpu_seconds_total" in text


def test_two_apps_keep_their_own_figures() -> None:
    one, two = GatewayMetrics(), GatewayMetrics()
    one.observe("/health", 200, 0.001)
    assert "riskstream_gateway_requests_total{" not in two.render().decode()
