"""The warehouse sink on chDB: every table filled, batch markers held until their rows, bad bytes counted."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from typing import Any

import confluent_kafka
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from simulation import as_published, sample_date
from simulation.sample import Published
from streams.codec import AvroCodec
from streams.kafka import BatchProducer, Message
from streams.schema_registry import FileSchemaRegistry
from streams.settings import StackSettings
from streams.signing import INBOX, VALIDATOR, Signer
from streams.topics import TopicNames
from streams.warehouse import WarehouseError, WarehouseSink, check_database, run_sink

pytestmark = pytest.mark.integration

DATE = dt.date(2026, 3, 14)
CODEC = AvroCodec(FileSchemaRegistry.default())


SIGNER = Signer(Ed25519PrivateKey.generate(), VALIDATOR)


def _messages(records: list[Published], start: int = 0) -> list[Message]:
    now = int(time.time() * 1000)
    return [Message(t, 0, start + i, k.encode(), v, now, tuple(h)) for i, (t, k, v, h) in enumerate(records)]


def _signed(topics: TopicNames, **sizes: Any) -> list[Published]:
    return as_published(sample_date(CODEC, topics, DATE, **sizes), SIGNER, topics)


@pytest.fixture
def database() -> str:
    return f"w_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sink(clickhouse: Any, database: str, topics: TopicNames) -> WarehouseSink:
    sink = WarehouseSink(clickhouse, database, topics, CODEC, validator_key=SIGNER.public_key, marker_timeout_s=0.5)
    sink.ensure_tables()
    return sink


def _count(client: Any, sql: str, **params: Any) -> int:
    return int(client.query(sql, parameters=params).result_rows[0][0])


def test_every_table_is_filled_and_redelivery_changes_nothing(
    sink: WarehouseSink, clickhouse: Any, database: str, topics: TopicNames
) -> None:
    records = _signed(topics, alerts=300, clusters=20, miners=("m1", "m2"), ground_truth=True)
    assert sink.write(_messages(records)) is True
    db = database
    assert _count(clickhouse, f"SELECT count() FROM {db}.ensemble_alert_scores FINAL") == 300
    assert _count(clickhouse, f"SELECT count() FROM {db}.ensemble_cluster_scores FINAL") == 20
    assert _count(clickhouse, f"SELECT count() FROM {db}.ensemble_batches FINAL") == 1
    assert _count(clickhouse, f"SELECT count() FROM {db}.miner_weights FINAL") == 2
    assert _count(clickhouse, f"SELECT count() FROM {db}.miner_submissions FINAL") == 2 * (300 + 20)
    assert _count(clickhouse, f"SELECT count() FROM {db}.submission_completions FINAL") == 2
    assert _count(clickhouse, f"SELECT count() FROM {db}.validation_results FINAL") == 2 * 3
    assert _count(clickhouse, f"SELECT count() FROM {db}.miner_performance WHERE has_ground_truth") == 3
    assert sink.stats.rows["miner_submissions"] == 640
    # at-least-once delivery: the same records again leave the same answers
    assert sink.write(_messages(records)) is True
    assert _count(clickhouse, f"SELECT count() FROM {db}.ensemble_alert_scores FINAL") == 300
    assert _count(clickhouse, f"SELECT count() FROM {db}.miner_submissions FINAL") == 640
    ranks = clickhouse.query(
        f"SELECT min(rank), max(rank), uniqExact(rank) FROM {db}.ensemble_alert_scores"
    ).result_rows
    assert ranks == [(1, 300, 300)]
    partitions = clickhouse.query(
        "SELECT DISTINCT partition FROM system.parts WHERE database = {db:String} AND active", parameters={"db": db}
    ).result_rows
    assert partitions == [("202603",)]


def test_batch_marker_waits_for_its_rows(
    sink: WarehouseSink, clickhouse: Any, database: str, topics: TopicNames
) -> None:
    records = _signed(topics, alerts=50, clusters=5, miners=("m1",))
    marker = [r for r in records if r[0] == topics.ensemble_batches]
    alerts = [r for r in records if r[0] == topics.ensemble_alerts]
    rest = [r for r in records if r[0] not in (topics.ensemble_batches, topics.ensemble_alerts)]
    assert sink.write(_messages(marker + rest)) is False  # alerts not in yet: not committed
    assert sink.pending_markers() == [("ethereum", DATE, 1)]
    assert _count(clickhouse, f"SELECT count() FROM {database}.ensemble_batches") == 0
    assert sink.write(_messages(alerts[:25])) is False
    assert sink.write(_messages(alerts[25:])) is True
    assert _count(clickhouse, f"SELECT count() FROM {database}.ensemble_batches") == 1
    assert sink.stats.forced_batches == 0


def test_marker_without_rows_is_written_after_the_timeout(sink: WarehouseSink, topics: TopicNames) -> None:
    records = _signed(topics, alerts=10, clusters=0, miners=("m1",))
    marker = [r for r in records if r[0] == topics.ensemble_batches]
    assert sink.write(_messages(marker)) is False
    time.sleep(0.6)
    assert sink.write([]) is True
    assert sink.stats.forced_batches == 1


def test_bad_records_are_counted_and_skipped(
    sink: WarehouseSink, clickhouse: Any, database: str, topics: TopicNames
) -> None:
    good = _signed(topics, alerts=10, clusters=0, miners=("m1",))
    alert = next(r for r in good if r[0] == topics.ensemble_alerts)
    chunk = next(r for r in good if r[0] == topics.validator_inbox)

    def signed(topic: str, value: bytes, source: str = "") -> Published:
        purpose = INBOX if source else topic.removeprefix(topics.namespace)
        return (topic, "k", value, SIGNER.headers(purpose, "k", value, batch_id=source or None))

    bad = [
        signed(topics.ensemble_alerts, b"not avro"),
        signed(topics.ensemble_alerts, b"\x00\x00\x00\x00\x63body"),  # unknown schema id 99
        signed(topics.ensemble_alerts, alert[2][:-3]),  # truncated
        signed(topics.ensemble_batches, alert[2]),  # right record, wrong topic
        signed(topics.validator_inbox, chunk[2], f"{topics.miner_scores('m2')}:0:1"),  # m1's chunk from m2's topic
        signed(topics.validator_inbox, alert[2], f"{topics.miner_scores('m1')}:0:2"),  # an ensemble record from a miner
    ]
    forger = Signer(Ed25519PrivateKey.generate(), VALIDATOR)
    forged = {**dict(alert[3]), **dict(forger.headers("ensemble.alerts", "k", alert[2]))}
    unsigned = [
        (topics.ensemble_alerts, "k", alert[2], []),  # not signed at all
        (topics.ensemble_alerts, "k", alert[2], list(forged.items())),  # signed by someone else
        (topics.ensemble_batches, alert[1], alert[2], alert[3]),  # a signature moved to another topic
        (topics.miner_scores("m1"), chunk[1], chunk[2], []),  # a miner topic is never read directly
    ]
    assert sink.write(_messages(bad + unsigned + good)) is True
    assert sink.stats.undecodable == 3
    assert sink.stats.rejected == 3
    assert sink.stats.unsigned == 4
    assert _count(clickhouse, f"SELECT count() FROM {database}.ensemble_alert_scores FINAL") == 10


def test_database_names_are_checked(clickhouse: Any, topics: TopicNames) -> None:
    with pytest.raises(WarehouseError):
        check_database("x; DROP TABLE y")
    with pytest.raises(WarehouseError):
        WarehouseSink(clickhouse, "1abc", topics, CODEC, validator_key=SIGNER.public_key)


async def test_run_sink_consumes_the_topics_and_commits(
    stack_settings: StackSettings, clickhouse: Any, database: str, topics: TopicNames, group_id: str
) -> None:
    records = _signed(topics, alerts=200, clusters=10, miners=("m1", "m2"))
    producer = BatchProducer(stack_settings.bootstrap_servers)
    for topic, key, value, headers in records:
        producer.send(topic, key, value, headers=headers)
    producer.flush()
    sink = WarehouseSink(clickhouse, database, topics, CODEC, validator_key=SIGNER.public_key)
    stop = asyncio.Event()
    task = asyncio.create_task(run_sink(stack_settings, sink, stop, group_id=group_id))
    try:
        deadline = time.monotonic() + 60
        while sink.stats.rows["ensemble_batches"] < 1 or sink.stats.commits < 1:
            assert time.monotonic() < deadline, f"sink did not finish: {sink.stats}"
            assert not task.done(), task
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert sink.stats.rows["ensemble_alert_scores"] == 200
    assert sink.stats.rows["miner_submissions"] == 2 * 210
    # every offset is committed (fresh topics: offsets count from 0), so a restarted sink reads nothing again
    consumer = confluent_kafka.Consumer({"bootstrap.servers": stack_settings.bootstrap_servers, "group.id": group_id})
    try:
        for topic in {t for t, _, _, _ in records}:
            wanted = [confluent_kafka.TopicPartition(topic, p) for p in range(stack_settings.topic_partitions)]
            committed = [tp.offset for tp in consumer.committed(wanted, timeout=10)]
            assert sum(max(o, 0) for o in committed) == sum(1 for t, _, _, _ in records if t == topic), topic
    finally:
        consumer.close()
