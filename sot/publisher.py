"""Publishing a batch: upload every file, then its manifest, then announce the manifest on Kafka.

The order is the contract: a consumer that sees the event finds the manifest, and the
manifest's files are already there with the checksums it lists. Traps go to the validator's
private prefix before the snapshot is announced; labels go to their own prefix and topic.
Re-publishing a date writes the same bytes (the first ``published_at`` is kept) and re-emits
the event with the time of the new announcement.

    manifest = publish_batch(store, producer, topics, batch)
    publish_labels(store, producer, topics, batch)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable

import orjson

from sot.errors import PublishError
from sot.generator import GENERATOR_VERSION, GeneratedBatch
from streams import batch as contract
from streams.errors import EventError, KafkaError, ObjectStoreError
from streams.kafka import BatchProducer, Producer
from streams.kafka_admin import ensure_topics, list_topics
from streams.objectstore import ObjectStore, sha256_hex
from streams.settings import StackSettings
from streams.signing import REANNOUNCE, Signer
from streams.topics import TopicNames

KeyFn = Callable[[str, dt.date, int, str], str]


def sot_producer(stack: StackSettings) -> BatchProducer:
    """A producer for the sot topics, after checking that the broker answers (and that the topics exist)."""
    list_topics(stack.bootstrap_servers, timeout=5.0)
    topics = [stack.topics.sot_batches, stack.topics.sot_labels]
    ensure_topics(stack.bootstrap_servers, topics, stack.topic_partitions, stack.replication_factor)
    return BatchProducer(stack.bootstrap_servers, **{"message.timeout.ms": 30_000})


def private_params_key(network: str, date: dt.date, window_days: int) -> str:
    """Where the generator arguments of a published batch are kept (the SOT's own prefix)."""
    return f"sot-private/{network}/{date.isoformat()}/{window_days}/params.json"


def batch_id(network: str, date: dt.date, window_days: int, files: dict[str, bytes]) -> str:
    digest = hashlib.sha256("".join(f"{n}:{sha256_hex(files[n])};" for n in sorted(files)).encode()).hexdigest()
    return f"{network}-{date.strftime('%Y%m%d')}-{window_days}d-{digest[:12]}"


def _manifest(
    store: ObjectStore,
    key_fn: KeyFn,
    kind: str,
    batch: GeneratedBatch,
    files: dict[str, bytes],
    now: dt.datetime,
    extra: dict[str, object],
) -> contract.Manifest:
    entries = {
        name: contract.FileEntry(_rows(batch, kind, name), sha256_hex(data), len(data)) for name, data in files.items()
    }
    published_at = now
    key = key_fn(batch.network, batch.processing_date, batch.window_days, contract.MANIFEST)
    if store.exists(key):  # same content published before: keep its time so the bytes stay the same
        try:
            previous = contract.Manifest.from_json(store.get(key))
        except EventError:
            previous = None
        if previous is not None and previous.files == entries:
            published_at = previous.published_at
    return contract.Manifest(
        network=batch.network,
        processing_date=batch.processing_date,
        window_days=batch.window_days,
        batch_id=batch_id(batch.network, batch.processing_date, batch.window_days, files),
        published_at=published_at,
        files=entries,
        kind=kind,
        extra=extra,
    )


def _rows(batch: GeneratedBatch, kind: str, name: str) -> int:
    if kind == "snapshot":
        return int(batch.tables[name].num_rows)
    if kind == "labels":
        return int((batch.alert_labels if name == "alert_labels.parquet" else batch.cluster_labels).num_rows)
    return int(batch.traps.num_rows)


def _upload(
    store: ObjectStore, key_fn: KeyFn, batch: GeneratedBatch, files: dict[str, bytes], manifest: contract.Manifest
) -> tuple[str, bytes]:
    key = key_fn(batch.network, batch.processing_date, batch.window_days, contract.MANIFEST)
    body = manifest.to_json()
    try:
        for name, data in files.items():
            store.put(key_fn(batch.network, batch.processing_date, batch.window_days, name), data)
        store.put(key, body)
    except ObjectStoreError as exc:
        msg = f"upload of {manifest.kind} {batch.network} {batch.processing_date} failed: {exc}"
        raise PublishError(msg) from exc
    return key, body


def emit_event(
    store: ObjectStore,
    producer: Producer,
    topic: str,
    kafka_key: str,
    key: str,
    body: bytes,
    when: dt.datetime,
    *,
    reannounce: tuple[Signer, dt.date] | None = None,
) -> None:
    """Send the object-created event of ``key`` and wait for the broker to acknowledge it.

    ``reannounce`` (an operator's signer and the date) signs a repeat announcement, the only kind
    the validator opens a new version of an emitted date for.
    """
    etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
    event = store.object_created_event(key, len(body), etag, when)
    headers = reannounce[0].headers(REANNOUNCE, kafka_key, event, date=reannounce[1]) if reannounce else None
    try:
        producer.send(topic, kafka_key, event, headers=headers)
        producer.flush()
    except KafkaError as exc:
        msg = f"event for {key} not delivered to {topic}: {exc}"
        raise PublishError(msg) from exc


def write_batch(
    store: ObjectStore,
    batch: GeneratedBatch,
    *,
    now: dt.datetime | None = None,
    private: ObjectStore | None = None,
) -> contract.Manifest:
    """Upload the snapshot without announcing it; traps and parameters go to the ``private`` store."""
    when = now or dt.datetime.now(dt.UTC)
    private = private or store
    try:
        private.put(
            private_params_key(batch.network, batch.processing_date, batch.window_days),
            orjson.dumps(batch.params, option=orjson.OPT_SORT_KEYS),
        )
    except ObjectStoreError as exc:
        msg = f"upload of {batch.network} {batch.processing_date} failed: {exc}"
        raise PublishError(msg) from exc
    traps = batch.trap_files()
    trap_manifest = _manifest(private, contract.traps_key, "traps", batch, traps, when, {})
    _upload(private, contract.traps_key, batch, traps, trap_manifest)
    files = batch.snapshot_files()
    counts = {name.removesuffix(".parquet"): table.num_rows for name, table in batch.tables.items()}
    manifest = _manifest(
        store, contract.snapshot_key, "snapshot", batch, files, when, {"generator": GENERATOR_VERSION, "rows": counts}
    )
    _upload(store, contract.snapshot_key, batch, files, manifest)
    return manifest


def publish_batch(
    store: ObjectStore,
    producer: Producer,
    topics: TopicNames,
    batch: GeneratedBatch,
    *,
    now: dt.datetime | None = None,
    emit: bool = True,
    private: ObjectStore | None = None,
) -> contract.Manifest:
    """Upload the batch, then emit the manifest's object-created event to ``sot.batches``.

    ``emit=False`` when the object store publishes its own notifications (MinIO -> Kafka).
    """
    manifest = write_batch(store, batch, now=now, private=private)
    if not emit:
        return manifest
    key = contract.snapshot_key(batch.network, batch.processing_date, batch.window_days, contract.MANIFEST)
    kafka_key = contract.batch_key(batch.network, batch.processing_date)
    # the event says when it was announced: a re-publication is a new announcement (a replay downstream)
    announced = now or dt.datetime.now(dt.UTC)
    emit_event(store, producer, topics.sot_batches, kafka_key, key, manifest.to_json(), announced)
    return manifest


def publish_labels(
    store: ObjectStore,
    producer: Producer,
    topics: TopicNames,
    batch: GeneratedBatch,
    *,
    now: dt.datetime | None = None,
    emit: bool = True,
) -> contract.Manifest:
    """Upload the ground truth of the batch under ``labels/``, then emit its event to ``sot.labels``."""
    when = now or dt.datetime.now(dt.UTC)
    files = batch.label_files()
    positives = int(sum(batch.alert_labels.column("label").to_pylist()))
    manifest = _manifest(store, contract.labels_key, "labels", batch, files, when, {"alert_positives": positives})
    # labels name the batch they label: the published snapshot's id
    snapshot_id = batch_id(batch.network, batch.processing_date, batch.window_days, batch.snapshot_files())
    manifest = dataclasses.replace(manifest, batch_id=snapshot_id)
    key, body = _upload(store, contract.labels_key, batch, files, manifest)
    if not emit:
        return manifest
    kafka_key = contract.batch_key(batch.network, batch.processing_date)
    emit_event(store, producer, topics.sot_labels, kafka_key, key, body, manifest.published_at)
    return manifest


def announce_batch(
    store: ObjectStore, producer: Producer, topics: TopicNames, network: str, date: dt.date, window_days: int
) -> contract.Manifest:
    """Re-emit the ``sot.batches`` event of a batch already in the store (nothing is rewritten)."""
    key = contract.snapshot_key(network, date, window_days, contract.MANIFEST)
    try:
        body = store.get(key)
        manifest = contract.Manifest.from_json(body)
    except (ObjectStoreError, EventError) as exc:
        msg = f"cannot announce {network} {date}: {exc}"
        raise PublishError(msg) from exc
    # announced now: the validator's deadline and latency of the new round count from here
    now = dt.datetime.now(dt.UTC)
    emit_event(store, producer, topics.sot_batches, contract.batch_key(network, date), key, body, now)
    return manifest
