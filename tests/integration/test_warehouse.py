"""The warehouse sink on chDB: every table filled, markers held until their rows, bad records dead-lettered."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from typing import Any

import clickhouse_connect
import confluent_kafka
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families
from sink_service import running

from simulation import as_published, sample_date
from simulation.sample import Published
from streams.codec import AvroCodec
from streams.deadletter import DeadLetter
from streams.errors import WarehouseError
from streams.kafka import BatchProducer, Message
from streams.schema_registry import FileSchemaRegistry
from streams.settings import StackSettings
from streams.signing import INBOX, VALIDATOR, Signer
from streams.topics import TopicNames
from streams.warehouse_schema import check_database
from warehouse.settings import WarehouseSettings
from warehouse.sink import WarehouseSink

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
    # markers wait long here (a loaded machine must not force one); the timeout test makes its own sink
    sink = WarehouseSink(clickhouse, database, topics, CODEC, validator_key=SIGNER.public_key, marker_timeout_s=300)
    sink.ensure_tables()
    return sink


def _rows(sink: WarehouseSink, table: str) -> float:
    return sink.metrics.value("riskstream_sink_rows_total", table=table)


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
    assert _rows(sink, "miner_submissions") == 640
    assert sink.take_dead_letters() == []
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
    assert sink.metrics.value("riskstream_sink_forced_batches_total") == 0


def test_marker_without_rows_is_written_after_the_timeout(clickhouse: Any, database: str, topics: TopicNames) -> None:
    sink = WarehouseSink(clickhouse, database, topics, CODEC, validator_key=SIGNER.public_key, marker_timeout_s=0.5)
    sink.ensure_tables()
    records = _signed(topics, alerts=10, clusters=0, miners=("m1",))
    marker = [r for r in records if r[0] == topics.ensemble_batches]
    assert sink.write(_messages(marker)) is False
    time.sleep(0.6)
    assert sink.write([]) is True
    assert sink.metrics.value("riskstream_sink_forced_batches_total") == 1


def test_bad_and_unsigned_records_become_dead_letters_with_their_bytes_and_reason(
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
    messages = _messages(bad + unsigned + good)
    assert sink.write(messages) is True
    value = sink.metrics.value
    assert value("riskstream_sink_bad_records_total", kind="undecodable") == 3
    assert value("riskstream_sink_bad_records_total", kind="rejected") == 3
    assert value("riskstream_sink_bad_records_total", kind="unsigned") == 4
    dead = sink.take_dead_letters()
    assert [(d.topic, d.offset, d.key, d.value) for d in dead] == [
        (m.topic, m.offset, m.key, m.value) for m in messages[:10]
    ]
    kinds = [d.reason.split(":")[0] for d in dead]
    assert kinds == ["undecodable"] * 3 + ["rejected"] * 3 + ["unsigned"] * 4
    assert "expected riskstream.EnsembleBatch" in dead[3].reason and "'m1' on the topic of miner 'm2'" in dead[4].reason
    assert sink.take_dead_letters() == []
    assert _count(clickhouse, f"SELECT count() FROM {database}.ensemble_alert_scores FINAL") == 10


def test_database_names_are_checked(clickhouse: Any, topics: TopicNames) -> None:
    with pytest.raises(WarehouseError):
        check_database("x; DROP TABLE y")
    with pytest.raises(WarehouseError):
        WarehouseSink(clickhouse, "1abc", topics, CODEC, validator_key=SIGNER.public_key)


async def test_the_service_consumes_commits_dead_letters_and_serves_reads(
    warehouse_stack: StackSettings, database: str, topics: TopicNames, group_id: str
) -> None:
    stack = warehouse_stack.model_copy(update={"validator_public_key": SIGNER.public_key})
    records = _signed(topics, alerts=200, clusters=10, miners=("m1", "m2"))
    records.insert(
        3,
        (
            topics.ensemble_alerts,
            "junk",
            b"not avro at all",
            SIGNER.headers("ensemble.alerts", "junk", b"not avro at all"),
        ),
    )
    producer = BatchProducer(stack.bootstrap_servers)
    for topic, key, value, headers in records:
        producer.send(topic, key, value, headers=headers)
    producer.flush()
    settings = WarehouseSettings(stack=stack, database=database, group_id=group_id)
    async with running(settings) as warehouse:
        sink = warehouse.sink
        deadline = time.monotonic() + 60
        while _rows(sink, "ensemble_batches") < 1 or sink.metrics.value("riskstream_sink_commits_total") < 1:
            assert time.monotonic() < deadline, "sink did not finish"
            await asyncio.sleep(0.2)
        assert _rows(sink, "ensemble_alert_scores") == 200
        assert _rows(sink, "miner_submissions") == 2 * 210

        # reads: any ClickHouse HTTP client, through the sink's endpoint over its chDB path
        reader = await asyncio.to_thread(clickhouse_connect.get_client, dsn=stack.warehouse_reads_url)
        try:
            sql = (
                f"SELECT count() AS n, max(rank) AS top FROM {database}.ensemble_alert_scores"  # noqa: S608
                " WHERE processing_date = {d:Date}"
            )
            result = await asyncio.to_thread(reader.query, sql, parameters={"d": DATE})
            assert list(result.named_results()) == [{"n": 200, "top": 200}]
            for statement in (
                f"DROP TABLE {database}.ensemble_alert_scores",
                f"INSERT INTO {database}.miner_weights SELECT * FROM {database}.miner_weights",
            ):
                with pytest.raises(Exception, match="READONLY"):
                    await asyncio.to_thread(reader.command, statement)
        finally:
            reader.close()
        async with httpx.AsyncClient(base_url=stack.warehouse_reads_url, timeout=10) as http:
            health = (await http.get("/health")).json()
            assert health["status"] == "ok" and health["pending_batches"] == []
            text = (await http.get("/metrics")).text
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert samples[("riskstream_sink_rows_total", (("table", "ensemble_alert_scores"),))] >= 200
        assert samples[("riskstream_dead_letters_total", (("topic", topics.dlq("warehouse")),))] >= 1

    # the junk record went to the dead-letter topic with its bytes and source position
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": stack.bootstrap_servers, "group.id": f"{group_id}-dlq", "auto.offset.reset": "earliest"}
    )
    try:
        consumer.subscribe([topics.dlq("warehouse")])
        found = None
        deadline = time.monotonic() + 30
        while found is None and time.monotonic() < deadline:
            found = consumer.poll(1.0)
            if found is not None and found.error():
                found = None
        assert found is not None, "no dead letter"
        raw = found.headers() or []
        assert isinstance(raw, list)
        pairs: list[tuple[str, bytes | None]] = [(n, d.encode() if isinstance(d, str) else d) for n, d in raw]
        letter = DeadLetter.from_headers(found.key(), found.value(), pairs)
        assert letter.value == b"not avro at all" and letter.key == b"junk"
        assert letter.topic == topics.ensemble_alerts and letter.reason.startswith("undecodable")
    finally:
        consumer.close()
    # every offset is committed (fresh topics: offsets count from 0), so a restarted sink reads nothing again
    for topic in {t for t, _, _, _ in records}:
        wanted = [confluent_kafka.TopicPartition(topic, p) for p in range(stack.topic_partitions)]
        committed = [tp.offset for tp in _committed(stack, group_id, wanted)]
        assert sum(max(o, 0) for o in committed) == sum(1 for t, _, _, _ in records if t == topic), topic


def _committed(stack: StackSettings, group_id: str, wanted: list[Any]) -> list[Any]:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": stack.bootstrap_servers, "group.id": group_id})
    try:
        return list(consumer.committed(wanted, timeout=10))
    finally:
        consumer.close()


def test_a_table_from_before_a_column_existed_gets_it(clickhouse: Any, database: str) -> None:
    from streams.warehouse_schema import ADDED_COLUMNS, TABLES, create_tables

    old = TABLES["ensemble_batches"].format(db=database)
    for column in ADDED_COLUMNS["ensemble_batches"]:
        old = old.replace(f",\n    {column}", "")  # the table as the first release created it
    assert "miner_keys" not in old and "status" not in old
    clickhouse.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    clickhouse.command(old)
    create_tables(clickhouse, database)
    create_tables(clickhouse, database)  # idempotent
    names = {r[0] for r in clickhouse.query(f"DESCRIBE TABLE {database}.ensemble_batches").result_rows}
    assert {"status", "reason", "miner_keys"} <= names
