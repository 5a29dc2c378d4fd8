"""Prometheus text of the gateway and the sink."""

from __future__ import annotations

from gateway.metrics import GatewayMetrics
from streams.warehouse import SinkStats


def test_requests_and_latency_histogram() -> None:
    metrics = GatewayMetrics()
    metrics.observe("/health", 200, 0.0007)
    metrics.observe("/health", 200, 0.03)
    metrics.observe('/x"y', 404, 9.0)
    text = metrics.render(None)
    assert 'riskstream_gateway_requests_total{route="/health",status="200"} 2' in text
    assert 'riskstream_gateway_request_seconds_bucket{route="/health",le="0.001"} 1' in text
    assert 'riskstream_gateway_request_seconds_bucket{route="/health",le="0.05"} 2' in text
    assert 'riskstream_gateway_request_seconds_bucket{route="/health",le="+Inf"} 2' in text
    assert 'riskstream_gateway_request_seconds_count{route="/x\\"y"} 1' in text
    assert 'riskstream_gateway_request_seconds_bucket{route="/x\\"y",le="5.0"} 0' in text
    assert "riskstream_sink" not in text
    assert text.endswith("\n")


def test_sink_figures() -> None:
    stats = SinkStats()
    stats.rows["ensemble_alert_scores"] = 1200
    stats.records["riskstream.EnsembleAlertScore"] = 1200
    stats.undecodable = 3
    stats.lag_seconds = 1.23456
    text = GatewayMetrics().render(stats, pending_markers=2)
    assert 'riskstream_sink_rows_total{table="ensemble_alert_scores"} 1200' in text
    assert 'riskstream_sink_records_total{record="riskstream.EnsembleAlertScore"} 1200' in text
    assert "riskstream_sink_undecodable_total 3" in text
    assert "riskstream_sink_pending_batches 2" in text
    assert "riskstream_sink_lag_seconds 1.235" in text
    assert "# TYPE riskstream_sink_lag_seconds gauge" in text
