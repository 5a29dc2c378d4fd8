"""The foundation against the real local stack: broker, S3 server, chDB, the stack command."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import confluent_kafka
import orjson
import pytest

from streams.codec import AvroCodec
from streams.faust_codec import SCHEMA_FIELD
from streams.kafka import BatchProducer
from streams.kafka_admin import ensure_topics, high_watermarks, list_topics
from streams.kafka_readers import AsyncBatchConsumer
from streams.objectstore import S3ObjectStore, open_store, parse_object_created, sha256_hex
from streams.schema_registry import FileSchemaRegistry
from streams.stack import stop_process_group
from streams.topics import TopicNames
from validator.settings import ValidatorSettings

pytestmark = pytest.mark.integration

RECORD = {
    "miner_id": "miner-a",
    "network": "ethereum",
    "processing_date": dt.date(2026, 1, 2),
    "batch_key": "snapshots/ethereum/2026-01-02/7/manifest.json",
    "error_type": "ChecksumMismatch",
    "message": "alerts.parquet: sha256 differs",
    "occurred_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
}


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec(FileSchemaRegistry.default())


def test_record_produced_with_the_codec_is_decoded_by_a_plain_consumer(
    broker: str, topics: TopicNames, group_id: str, codec: AvroCodec
) -> None:
    topic = topics.miner_errors
    ensure_topics(broker, [topic], partitions=2)
    assert topic in list_topics(broker)
    producer = BatchProducer(broker)
    for i in range(10):
        producer.send(topic, f"k{i}", codec.encode("riskstream.MinerError", {**RECORD, "message": f"m{i}"}))
    producer.flush()
    assert set(high_watermarks(broker, topic)) == {0, 1}  # values: see the gap in streams.kafka

    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": broker, "group.id": group_id, "auto.offset.reset": "earliest", "session.timeout.ms": 6000}
    )
    consumer.subscribe([topic])
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(got) < 10 and time.monotonic() < deadline:
        for message in consumer.consume(100, timeout=1.0):
            assert message.error() is None
            got.append(codec.decode(message.value()).record)
    consumer.close()
    assert sorted(r["message"] for r in got) == [f"m{i}" for i in range(10)]
    assert all(r["processing_date"] == dt.date(2026, 1, 2) for r in got)


async def test_async_batch_consumer_reads_and_commits(
    broker: str, topics: TopicNames, group_id: str, codec: AvroCodec
) -> None:
    topic = topics.dlq("scores")
    ensure_topics(broker, [topic], partitions=1)
    producer = BatchProducer(broker)
    producer.send(topic, "k", codec.encode("riskstream.MinerError", RECORD))
    producer.flush()
    async with AsyncBatchConsumer(broker, group_id, [topic], session_timeout_ms=6000) as consumer:
        batch: list[Any] = []
        deadline = time.monotonic() + 30
        while not batch and time.monotonic() < deadline:
            batch = await consumer.getmany()
        await consumer.commit()
    assert [codec.decode(m.value).record["miner_id"] for m in batch] == ["miner-a"]
    assert batch[0].topic == topic and batch[0].offset == 0


async def test_fetch_times_tell_apart_records_sent_a_tenth_of_a_second_apart(
    broker: str, topics: TopicNames, group_id: str
) -> None:
    """Where the broker records no append time, when the bridge fetched a record orders the miners.

    A copy reached the broker 79 ms after its original in the end-to-end stack. With a 500 ms fetch
    wait the local broker answered every ~250 ms: records sent 100 ms apart were fetched together
    (0, 253, 0, 252, 0 ms apart), and a draw, not the evidence, chose which was the copy.
    """
    original, copy = topics.miner_scores("orig"), topics.miner_scores("copy")
    ensure_topics(broker, [original, copy], partitions=1)
    wait_ms = ValidatorSettings.model_fields["bridge_fetch_wait_ms"].default
    pairs = 5

    def send() -> None:
        producer = confluent_kafka.Producer({"bootstrap.servers": broker, "linger.ms": 0})
        for i in range(pairs):
            for topic in (original, copy):
                producer.produce(topic, key=f"{i}", value=b"scores")
                producer.flush(10)
                time.sleep(0.1)
            time.sleep(0.2)

    async with AsyncBatchConsumer(
        broker, group_id, [original, copy], session_timeout_ms=6000, auto_offset_reset="latest",
        fetch_max_wait_ms=wait_ms,
    ) as consumer:  # fmt: skip
        deadline = time.monotonic() + 30
        while not await consumer.caught_up() and time.monotonic() < deadline:  # assigned, at the end
            await consumer.getmany()
        sender = asyncio.ensure_future(asyncio.to_thread(send))
        got: list[Any] = []
        while len(got) < 2 * pairs and time.monotonic() < deadline:
            got += await consumer.getmany()
        await sender
    fetched = {(m.topic, m.key): m.fetched_ms for m in got}
    gaps = [fetched[(copy, f"{i}".encode())] - fetched[(original, f"{i}".encode())] for i in range(pairs)]
    assert all(gap >= 30 for gap in gaps), f"fetch times of records sent 100 ms apart: {gaps} ms apart"


def test_record_produced_with_the_codec_reaches_a_faust_agent(
    broker: str, topics: TopicNames, codec: AvroCodec, tmp_path: Path
) -> None:
    topic_name = topics.miner_errors
    ensure_topics(broker, [topic_name], partitions=1)
    producer = BatchProducer(broker)
    producer.send(topic_name, "k", codec.encode("riskstream.MinerError", RECORD))
    producer.flush()

    out = tmp_path / "received.jsonl"
    worker = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("faust_echo_worker.py")),
            broker,
            topic_name,
            str(out),
            str(tmp_path / "faust"),
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.log").open("wb"),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not (out.exists() and out.read_bytes().strip()) and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-2000:]
            time.sleep(0.3)
    finally:
        stop_process_group(worker.pid)
    received = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert received, "the Faust agent received nothing"
    assert received[0][SCHEMA_FIELD] == "riskstream.MinerError"
    assert received[0]["message"] == RECORD["message"]
    assert received[0]["processing_date"] == "2026-01-02"


def test_s3_put_list_get_and_event(s3_endpoint: str, s3_credentials: dict[str, Any]) -> None:
    bucket = f"b{uuid.uuid4().hex[:8]}"
    store = open_store(f"s3://{bucket}/sot", endpoint_url=s3_endpoint, **s3_credentials)
    assert isinstance(store, S3ObjectStore)
    store.create_bucket()
    key = "snapshots/ethereum/2026-01-02/7/manifest.json"
    store.put(key, b'{"ok": true}')
    assert store.list("snapshots/") == [key]
    assert store.get(key) == b'{"ok": true}'
    assert store.exists(key) and not store.exists("nope")
    event = store.object_created_event(key, 12, sha256_hex(b'{"ok": true}'), dt.datetime.now(dt.UTC))
    [created] = parse_object_created(event)
    assert created.bucket == bucket and created.key == f"sot/{key}"
    assert store.key_of(created) == key
    assert store.get(store.key_of(created)) == b'{"ok": true}'


def test_unreachable_s3_gives_a_clear_error() -> None:
    from streams.errors import ObjectStoreError

    store = open_store("s3://nobucket", endpoint_url="http://127.0.0.1:9", access_key_id="x", secret_access_key="y")
    with pytest.raises(ObjectStoreError, match="cannot read s3://nobucket"):
        store.get("k")


def test_clickhouse_on_chdb_creates_inserts_and_queries(clickhouse: Any) -> None:
    table = f"t_{uuid.uuid4().hex[:8]}"
    clickhouse.command(f"CREATE TABLE {table} (d Date, id String, score Float64) ENGINE = MergeTree ORDER BY (d, id)")
    clickhouse.insert(
        table, [[dt.date(2026, 1, 2), f"a{i}", i / 10] for i in range(10)], column_names=["d", "id", "score"]
    )
    result = clickhouse.query(
        f"SELECT count(), max(score) FROM {table} WHERE d = {{d:Date}}", parameters={"d": dt.date(2026, 1, 2)}
    )
    assert result.result_rows == [(10, 0.9)]
