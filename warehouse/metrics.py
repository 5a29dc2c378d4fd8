"""The sink's Prometheus metrics: records in, rows out, dead letters, inserts, lag, held batch markers.

metrics = SinkMetrics(prometheus_client.REGISTRY)   # the process's /metrics; default: a private registry
metrics.value("riskstream_sink_rows_total", table="ensemble_alert_scores")
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class SinkMetrics:
    """Every metric the sink updates, registered once in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.records_in = Counter("riskstream_sink_records_in", "Records consumed, by topic.", ["topic"], registry=r)
        self.records = Counter("riskstream_sink_records", "Records stored, by record type.", ["record"], registry=r)
        self.bad_records = Counter(
            "riskstream_sink_bad_records",
            "Records dead-lettered: unsigned (not signed by the validator), undecodable, or rejected "
            "(not what the topic carries, or inconsistent).",
            ["kind"],
            registry=r,
        )
        self.rows = Counter(
            "riskstream_sink_rows", "Rows inserted into the warehouse, by table.", ["table"], registry=r
        )
        self.insert_seconds = Histogram(
            "riskstream_sink_insert_seconds", "Duration of one insert statement.", registry=r
        )
        self.insert_failures = Counter(
            "riskstream_sink_insert_failures", "Insert statements that failed (retried).", registry=r
        )
        self.commits = Counter("riskstream_sink_commits", "Offset commits after inserts.", registry=r)
        self.forced_batches = Counter(
            "riskstream_sink_forced_batches", "Batch markers written before all their rows arrived.", registry=r
        )
        self.pending_batches = Gauge(
            "riskstream_sink_pending_batches", "Batch markers waiting for their rows.", registry=r
        )
        self.lag_seconds = Gauge(
            "riskstream_sink_lag_seconds",
            "Now minus the produce time of the newest record of the last flush.",
            registry=r,
        )
        self.last_flush = Gauge(
            "riskstream_sink_last_flush_timestamp_seconds", "Unix time of the last flush.", registry=r
        )

    def value(self, name: str, **labels: str) -> float:
        """One sample's value (0 if it was never touched), e.g. ``value("riskstream_sink_rows_total", table="x")``."""
        return self.registry.get_sample_value(name, labels) or 0.0
