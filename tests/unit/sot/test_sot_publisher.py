"""Publishing to a file store: files, manifest checksums, one event per publish, idempotence."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sot_batches import DAY, small_batch

from sot.errors import PublishError
from sot.publisher import announce_batch, publish_batch, publish_labels
from streams import batch as contract
from streams.errors import KafkaError
from streams.objectstore import FileObjectStore, parse_object_created, sha256_hex
from streams.topics import TopicNames

TOPICS = TopicNames("t.")
NOW = dt.datetime(2026, 3, 11, 6, 0, tzinfo=dt.UTC)


class RecordingProducer:
    """Keeps what was sent; ``fail`` makes flush report a failed delivery like BatchProducer."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes | str | None, bytes | None]] = []
        self.flushed = 0
        self.fail = fail

    def send(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        self.sent.append((topic, key, value))

    def flush(self, timeout: float = 60.0) -> None:
        self.flushed += 1
        if self.fail:
            raise KafkaError("1 deliveries failed, first: t.sot.batches: Local: Message timed out")


def test_publish_uploads_files_then_manifest_and_emits_one_event(tmp_path: Path) -> None:
    store, producer, batch = FileObjectStore(tmp_path), RecordingProducer(), small_batch()
    manifest = publish_batch(store, producer, TOPICS, batch, now=NOW)

    assert manifest.kind == "snapshot" and manifest.processing_date == DAY and manifest.published_at == NOW
    assert set(manifest.files) == set(contract.BATCH_FILES)
    for name, entry in manifest.files.items():
        data = store.get(contract.snapshot_key("ethereum", DAY, 7, name))
        assert (entry.sha256, entry.bytes) == (sha256_hex(data), len(data))
        table = pq.read_table(pa.BufferReader(data))
        assert table.num_rows == entry.rows and table.schema.equals(contract.BATCH_FILES[name])

    [(topic, key, value)] = producer.sent
    assert (topic, key) == ("t.sot.batches", "ethereum:2026-03-10") and producer.flushed == 1
    [event] = parse_object_created(value)
    assert contract.Manifest.from_json(store.get(store.key_of(event))) == manifest

    traps = contract.Manifest.from_json(store.get(contract.traps_key("ethereum", DAY, 7, contract.MANIFEST)))
    assert traps.kind == "traps" and traps.files["traps.parquet"].rows == batch.traps.num_rows
    assert not any(k.startswith(("labels/",)) for k in store.list())  # truth is not out before its time


def test_republishing_writes_the_same_bytes_and_emits_again(tmp_path: Path) -> None:
    store, producer = FileObjectStore(tmp_path), RecordingProducer()
    publish_batch(store, producer, TOPICS, small_batch(), now=NOW)
    before = {k: store.get(k) for k in store.list()}
    later = NOW + dt.timedelta(hours=5)
    publish_batch(store, producer, TOPICS, small_batch(), now=later)
    assert {k: store.get(k) for k in store.list()} == before
    # the same object, announced again: the event carries the time of each announcement
    first, again = (parse_object_created(value)[0] for _, _, value in producer.sent)
    assert (first.key, first.size, first.etag) == (again.key, again.size, again.etag)
    assert (first.event_time, again.event_time) == (NOW, later)
    announced = announce_batch(store, producer, TOPICS, "ethereum", DAY, 7)
    assert announced.published_at == NOW
    assert producer.sent[2][:2] == producer.sent[0][:2]
    assert parse_object_created(producer.sent[2][2])[0].event_time > later


def test_labels_go_to_their_prefix_and_topic(tmp_path: Path) -> None:
    store, producer, batch = FileObjectStore(tmp_path), RecordingProducer(), small_batch()
    manifest = publish_labels(store, producer, TOPICS, batch, now=NOW)
    assert manifest.kind == "labels" and set(manifest.files) == set(contract.LABEL_FILES)
    data = store.get(contract.labels_key("ethereum", DAY, 7, "alert_labels.parquet"))
    assert pq.read_table(pa.BufferReader(data)).equals(batch.alert_labels)
    [(topic, key, value)] = producer.sent
    assert (topic, key) == ("t.sot.labels", "ethereum:2026-03-10")
    [event] = parse_object_created(value)
    assert event.key == contract.labels_key("ethereum", DAY, 7, contract.MANIFEST)


def test_a_failed_delivery_is_a_clear_publish_error(tmp_path: Path) -> None:
    with pytest.raises(PublishError, match=r"event for snapshots/ethereum/2026-03-10/7/manifest.json not delivered"):
        publish_batch(FileObjectStore(tmp_path), RecordingProducer(fail=True), TOPICS, small_batch(), now=NOW)


def test_an_unwritable_store_is_a_clear_publish_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    producer = RecordingProducer()
    with pytest.raises(PublishError, match="failed"):
        publish_batch(FileObjectStore(blocker / "store"), producer, TOPICS, small_batch(), now=NOW)
    assert producer.sent == []  # nothing announced that is not there
