"""The miner's Prometheus metrics: batch events in, records out, batches by outcome, scoring time, latency.

monitoring.observe_outcome(outcome.status, seconds)
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter("riskstream_miner_events_in", "Batch events consumed from sot.batches.")
RECORDS_OUT = Counter("riskstream_miner_records_out", "Records produced, by topic.", ["topic"])
BATCHES = Counter("riskstream_miner_batches", "Announced objects handled, by outcome.", ["status"])
BATCH_SECONDS = Histogram(
    "riskstream_miner_batch_seconds",
    "Time to load, verify, score and send one batch.",
    buckets=(0.5, 1, 2.5, 5, 10, 20, 60, 120, 300),
)
LATENCY = Gauge("riskstream_miner_latency_seconds", "From batch publication to the newest submission sent.")


def observe_outcome(status: str, seconds: float) -> None:
    BATCHES.labels(status).inc()
    if status == "submitted":
        BATCH_SECONDS.observe(seconds)
