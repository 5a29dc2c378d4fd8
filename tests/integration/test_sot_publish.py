"""Publishing to a real S3 API (moto server) and broker: one event per batch, parsed back to its manifest."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest

from sot.generator import generate_batch
from sot.publisher import publish_batch, publish_labels
from streams import batch as contract
from streams.cli import main
from streams.kafka import BatchProducer, Message
from streams.kafka_admin import ensure_topics
from streams.kafka_readers import AsyncBatchConsumer
from streams.objectstore import S3ObjectStore, open_store, parse_object_created, sha256_hex
from streams.settings import StackSettings
from streams.topics import TopicNames

pytestmark = pytest.mark.integration
DAY = dt.date(2026, 4, 1)
SIZES = {"alerts": 300, "addresses": 1500, "flows": 9000, "clusters": 15, "seed": 9}


async def _read(broker: str, group_id: str, topics: list[str], want: int, timeout: float = 30.0) -> list[Message]:
    """Every record of ``topics`` once ``want`` arrived and a short quiet period passed."""
    found: list[Message] = []
    async with AsyncBatchConsumer(broker, group_id, topics, timeout_ms=300) as consumer:
        deadline = time.monotonic() + timeout
        quiet_until = None
        while time.monotonic() < deadline:
            found.extend(await consumer.getmany())
            if len(found) >= want:
                quiet_until = quiet_until or time.monotonic() + 1.5
                if time.monotonic() > quiet_until:
                    break
            await asyncio.sleep(0)
    return found


@pytest.fixture
def s3_store(s3_endpoint: str, s3_credentials: dict[str, Any], namespace: str) -> S3ObjectStore:
    store = open_store(f"s3://sot-{namespace.rstrip('.')}/data", endpoint_url=s3_endpoint, **s3_credentials)
    assert isinstance(store, S3ObjectStore)
    store.create_bucket()
    return store


async def test_publish_to_s3_emits_one_event_that_parses_back_to_the_manifest(
    s3_store: S3ObjectStore, broker: str, topics: TopicNames, group_id: str
) -> None:
    ensure_topics(broker, [topics.sot_batches, topics.sot_labels], partitions=4)
    batch = generate_batch("ethereum", DAY, **SIZES)
    producer = BatchProducer(broker)
    manifest = publish_batch(s3_store, producer, topics, batch)
    labels = publish_labels(s3_store, producer, topics, batch)

    found = await _read(broker, group_id, [topics.sot_batches, topics.sot_labels], want=2)
    [message] = [m for m in found if m.topic == topics.sot_batches]
    assert message.key == b"ethereum:2026-04-01"
    [event] = parse_object_created(message.value)
    assert event.bucket == s3_store.bucket and event.key == "data/" + contract.snapshot_key(
        "ethereum", DAY, 7, contract.MANIFEST
    )
    read_back = contract.Manifest.from_json(s3_store.get(s3_store.key_of(event)))
    assert read_back == manifest
    for name, entry in read_back.files.items():
        assert sha256_hex(s3_store.get(contract.snapshot_key("ethereum", DAY, 7, name))) == entry.sha256

    [message] = [m for m in found if m.topic == topics.sot_labels]
    assert message.key == b"ethereum:2026-04-01"
    [event] = parse_object_created(message.value)
    assert contract.Manifest.from_json(s3_store.get(s3_store.key_of(event))) == labels


async def test_cli_backfill_then_labels(
    stack_settings: StackSettings, topics: TopicNames, group_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RISKSTREAM_BOOTSTRAP_SERVERS", stack_settings.bootstrap_servers)
    monkeypatch.setenv("RISKSTREAM_OBJECT_STORE_URL", stack_settings.object_store_url)
    monkeypatch.setenv("RISKSTREAM_TOPIC_NAMESPACE", stack_settings.topic_namespace)
    for name, value in SIZES.items():
        monkeypatch.setenv(f"SOT_{name.upper()}", str(value))
    assert await asyncio.to_thread(main, ["sot", "publish", "--date", "2026-04-03", "--days", "3"]) == 0
    assert await asyncio.to_thread(main, ["sot", "labels", "--date", "2026-04-02"]) == 0
    # publishing a date that is already in the store announces it again without rewriting it
    store = open_store(stack_settings.object_store_url)
    before = {k: store.get(k) for k in store.list()}
    assert await asyncio.to_thread(main, ["sot", "publish", "--date", "2026-04-03"]) == 0
    assert {k: store.get(k) for k in store.list()} == before

    found = await _read(stack_settings.bootstrap_servers, group_id, [topics.sot_batches, topics.sot_labels], want=5)
    batches = sorted(m.key or b"" for m in found if m.topic == topics.sot_batches)
    assert batches == [b"ethereum:2026-04-01", b"ethereum:2026-04-02", b"ethereum:2026-04-03", b"ethereum:2026-04-03"]
    [message] = [m for m in found if m.topic == topics.sot_labels]
    [event] = parse_object_created(message.value)
    labels = contract.Manifest.from_json(store.get(store.key_of(event)))
    assert labels.kind == "labels" and labels.files["alert_labels.parquet"].rows == SIZES["alerts"]


def test_an_owner_batch_is_published_from_an_s3_prefix(
    s3_store: S3ObjectStore, s3_endpoint: str, s3_credentials: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from simulation.owner_files import build_owner_batch, parquet_bytes

    owner = build_owner_batch("torus", DAY, alerts=80, seed=2)
    incoming = open_store(f"s3://{s3_store.bucket}/owner-in", endpoint_url=s3_endpoint, **s3_credentials)
    for name, table in owner.files.items():
        incoming.put(name, parquet_bytes(table))
    monkeypatch.setenv("RISKSTREAM_OBJECT_STORE_URL", f"s3://{s3_store.bucket}/published")
    monkeypatch.setenv("RISKSTREAM_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("RISKSTREAM_S3_ACCESS_KEY_ID", s3_credentials["access_key_id"])
    monkeypatch.setenv("RISKSTREAM_S3_SECRET_ACCESS_KEY", s3_credentials["secret_access_key"])
    monkeypatch.setenv("SOT_EMIT_EVENTS", "false")
    args = ["--from", f"s3://{s3_store.bucket}/owner-in", "--network", "torus", "--date", DAY.isoformat()]
    assert main(["sot", "publish", *args]) == 0
    published = open_store(f"s3://{s3_store.bucket}/published", endpoint_url=s3_endpoint, **s3_credentials)
    batch = contract.read_batch(published, contract.snapshot_key("torus", DAY, 7, contract.MANIFEST))
    assert batch.alerts.num_rows == 80 and batch.manifest.extra["source"] == "owner"
