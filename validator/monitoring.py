"""The validator's Prometheus metrics: records in and out, lag, batch and round durations, ensembles, weights.

Counted at the edges (the agents and the producer of its outputs), so the round logic stays pure.

    producer = RoundMeter(codec, topics).wrap(SigningProducer(...))
    meter.round_opened(b"ethereum:2026-01-02")
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from streams.codec import AvroCodec
from streams.errors import CodecError
from streams.monitoring import CountingProducer
from streams.topics import TopicNames

RECORDS_IN = Counter("riskstream_validator_records_in", "Records consumed, by topic.", ["topic"])
RECORDS_OUT = Counter("riskstream_validator_records_out", "Records produced, by topic.", ["topic"])
REFUSED = Counter("riskstream_validator_inbox_refused", "Inbox records not forwarded by the bridge (dropped).")
LAG = Gauge("riskstream_validator_lag_seconds", "Now minus the broker time of the newest inbox record handled.")
BATCH_SECONDS = Histogram("riskstream_validator_batch_seconds", "Time to handle one batch of inbox records.")
ROUND_SECONDS = Histogram(
    "riskstream_validator_round_seconds",
    "From a batch event first seen to its ensemble emitted.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
)
ENSEMBLES = Counter("riskstream_validator_ensembles", "Ensemble versions emitted, by trigger.", ["trigger"])
WEIGHT = Gauge("riskstream_validator_miner_weight", "Each miner's weight in its newest ensemble.", ["miner_id"])


def observe_inbox(topic: str, count: int, newest_ms: int) -> None:
    RECORDS_IN.labels(topic).inc(count)
    if newest_ms > 0:
        LAG.set(max(0.0, time.time() - newest_ms / 1000))


class RoundMeter:
    """Times rounds from their batch event to their ``EnsembleBatch`` record, and keeps the weights."""

    def __init__(self, codec: AvroCodec, topics: TopicNames) -> None:
        self.codec = codec
        self.topics = topics
        self._opened: dict[str, float] = {}  # network:date -> monotonic time the batch event was seen

    def wrap(self, producer: Any) -> CountingProducer:
        return CountingProducer(producer, RECORDS_OUT, self._sent)

    def round_opened(self, key: bytes | None) -> None:
        if key:
            self._opened.setdefault(key.decode(errors="replace"), time.monotonic())

    def _sent(self, topic: str, key: bytes | str | None, value: bytes | None) -> None:
        if topic != self.topics.ensemble_batches or value is None:
            return
        try:
            record = self.codec.decode(value).record
        except CodecError:
            return
        ENSEMBLES.labels(str(record.get("trigger", ""))).inc()
        for miner in record.get("miners", []):
            WEIGHT.labels(str(miner["miner_id"])).set(float(miner["weight"]))
        name = key.decode(errors="replace") if isinstance(key, bytes) else str(key)
        opened = self._opened.pop(name, None)
        if opened is not None:
            ROUND_SECONDS.observe(time.monotonic() - opened)
