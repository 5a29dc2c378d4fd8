"""Every service's /metrics is prometheus-client output: the endpoint, the counting producer, the round meter."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from streams.codec import AvroCodec
from streams.health import HealthServer
from streams.monitoring import CountingProducer, metrics_route
from streams.schema_registry import FileSchemaRegistry
from streams.topics import TopicNames
from validator import monitoring as validator_metrics
from validator.monitoring import RoundMeter

CODEC = AvroCodec(FileSchemaRegistry.default())


class _Recording:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | str | None, bytes | None]] = []

    def send(self, topic: str, key: bytes | str | None, value: bytes | None, headers: object = None) -> None:
        self.sent.append((topic, key, value))

    def flush(self, timeout: float = 60.0) -> None:
        pass


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_metrics_route_answers_prometheus_text_beside_health() -> None:
    validator_metrics.REFUSED.inc()
    async with HealthServer({"/metrics": metrics_route()}, port=0) as server:
        answer = await asyncio.to_thread(httpx.get, f"{server.url}/metrics", timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(answer.text)}
    assert {"riskstream_validator_inbox_refused", "process_cpu_seconds"} <= names


def test_the_counting_producer_and_the_round_meter_see_what_the_validator_emits() -> None:
    topics = TopicNames("mon.")
    meter = RoundMeter(CODEC, topics)
    inner = _Recording()
    producer = meter.wrap(inner)
    before = _value("riskstream_validator_records_out_total", topic=topics.ensemble_alerts)
    rounds_before = _value("riskstream_validator_round_seconds_count")
    meter.round_opened(b"ethereum:2026-01-02")
    producer.send(topics.ensemble_alerts, "k", b"x")
    batch = {
        "network": "ethereum", "processing_date": dt.date(2026, 1, 2), "window_days": 7, "batch_id": "b",
        "version": 1, "aggregation_method": "m", "trigger": "all_complete", "alert_count": 1, "cluster_count": 0,
        "expected_miners": ["m1"], "miners": [{"miner_id": "m1", "weight": 0.75, "immediate_score": 0.4,
                                               "completed": True}],
        "aggregated_at": dt.datetime(2026, 1, 2, 7, tzinfo=dt.UTC),
    }  # fmt: skip
    producer.send(topics.ensemble_batches, b"ethereum:2026-01-02", CODEC.encode("riskstream.EnsembleBatch", batch))
    producer.flush()
    assert [t for t, _, _ in inner.sent] == [topics.ensemble_alerts, topics.ensemble_batches]
    assert _value("riskstream_validator_records_out_total", topic=topics.ensemble_alerts) == before + 1
    assert _value("riskstream_validator_miner_weight", miner_id="m1") == 0.75
    assert _value("riskstream_validator_round_seconds_count") == rounds_before + 1
    assert _value("riskstream_validator_ensembles_total", trigger="all_complete") >= 1
    validator_metrics.observe_inbox(topics.validator_inbox, 3, 0)
    assert _value("riskstream_validator_records_in_total", topic=topics.validator_inbox) >= 3


def test_a_plain_counter_counts_by_topic() -> None:
    from prometheus_client import CollectorRegistry, Counter

    registry = CollectorRegistry()
    counter = Counter("t_out", "records out", ["topic"], registry=registry)
    producer = CountingProducer(_Recording(), counter)
    producer.send("a", None, b"1")
    producer.send("a", None, b"2")
    assert registry.get_sample_value("t_out_total", {"topic": "a"}) == 2
