"""Kafka plumbing: an idempotent producer, an async batch consumer, topics, offsets.

confluent-kafka produces (idempotent, batched); aiokafka consumes inside asyncio services.
Every broker failure surfaces as ``streams.errors.KafkaError``.

    producer = BatchProducer(stack.bootstrap_servers)
    producer.send(topic, key, value)
    producer.flush()          # raises KafkaError if any delivery failed
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # re-exported at runtime

from streams.errors import KafkaError

# librdkafka logs connection failures to stderr itself; route them to logging instead
_LIBRDKAFKA_LOG = logging.getLogger("streams.librdkafka")


@dataclass(frozen=True, slots=True)
class Message:
    """A consumed record, with where it came from (for dead letters and offset indexes)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()


class BatchProducer:
    """An idempotent confluent-kafka producer that batches; ``flush`` reports failed deliveries."""

    def __init__(self, bootstrap_servers: str, **config: Any) -> None:
        settings: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "none",
            "partitioner": "murmur2_random",  # Java's partitioner: co-partitioned with any client
            "logger": _LIBRDKAFKA_LOG,
            "message.timeout.ms": 60_000,
        }
        settings.update(config)
        self._producer = confluent_kafka.Producer(settings)
        self._errors: list[str] = []

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def send(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=list(headers or ()), on_delivery=self._delivered
                )
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.1)
            except confluent_kafka.KafkaException as exc:
                msg = f"produce to {topic} failed: {exc}"
                raise KafkaError(msg) from exc
        self._producer.poll(0)

    def send_many(self, topic: str, items: Iterable[tuple[bytes | str | None, bytes | None]]) -> int:
        count = 0
        for key, value in items:
            self.send(topic, key, value)
            count += 1
        return count

    def flush(self, timeout: float = 60.0) -> None:
        remaining = self._producer.flush(timeout)
        errors, self._errors = self._errors, []
        if remaining:
            errors.append(f"{remaining} messages still queued after {timeout}s")
        if errors:
            msg = f"{len(errors)} deliveries failed, first: {errors[0]}"
            raise KafkaError(msg)


def admin(bootstrap_servers: str) -> AdminClient:
    config: dict[str, Any] = {"bootstrap.servers": bootstrap_servers, "logger": _LIBRDKAFKA_LOG}
    return AdminClient(config)


def ensure_topics(
    bootstrap_servers: str, names: Iterable[str], partitions: int = 4, replication: int = 1, timeout: float = 30.0
) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    client = admin(bootstrap_servers)
    existing = set(list_topics(bootstrap_servers, timeout))
    wanted = [
        NewTopic(n, num_partitions=partitions, replication_factor=replication) for n in names if n not in existing
    ]
    if not wanted:
        return
    for name, future in client.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result(timeout)
        except confluent_kafka.KafkaException as exc:
            if exc.args and exc.args[0].code() == confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            msg = f"cannot create topic {name}: {exc}"
            raise KafkaError(msg) from exc


def list_topics(bootstrap_servers: str, timeout: float = 10.0) -> list[str]:
    try:
        metadata = admin(bootstrap_servers).list_topics(timeout=timeout)
    except confluent_kafka.KafkaException as exc:
        msg = f"broker {bootstrap_servers} unreachable: {exc}"
        raise KafkaError(msg) from exc
    return sorted(metadata.topics)


def partitions_of(bootstrap_servers: str, topic: str, timeout: float = 10.0) -> list[int]:
    try:
        metadata = admin(bootstrap_servers).list_topics(topic, timeout=timeout)
    except confluent_kafka.KafkaException as exc:
        msg = f"broker {bootstrap_servers} unreachable: {exc}"
        raise KafkaError(msg) from exc
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return []
    return sorted(found.partitions)


def offsets_for_time(bootstrap_servers: str, topic: str, when: dt.datetime, timeout: float = 10.0) -> dict[int, int]:
    """First offset per partition at or after ``when`` (-1 = none yet).

    Brokers answer from their own write time; some (the local one) always answer 0, so replay
    by processing date uses the validator's date -> offset index, not this.
    """
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": "riskstream-offsets", "logger": _LIBRDKAFKA_LOG}
    )
    try:
        ms = int(when.timestamp() * 1000)
        wanted = [confluent_kafka.TopicPartition(topic, p, ms) for p in partitions_of(bootstrap_servers, topic)]
        found = consumer.offsets_for_times(wanted, timeout=timeout)
    except confluent_kafka.KafkaException as exc:
        msg = f"offsets for time on {topic}: {exc}"
        raise KafkaError(msg) from exc
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in found}


def high_watermarks(bootstrap_servers: str, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """Next offset to be written per partition.

    On the local broker ListOffsets(latest) answers the last *batch's* first offset + 1, not
    the high watermark, so never use this to decide that a partition was read to its end there:
    stop on an in-band marker (e.g. SubmissionComplete) or an idle timeout instead.
    """
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": "riskstream-offsets", "logger": _LIBRDKAFKA_LOG}
    )
    try:
        return {
            p: consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=timeout)[1]
            for p in partitions_of(bootstrap_servers, topic)
        }
    except confluent_kafka.KafkaException as exc:
        msg = f"watermarks of {topic}: {exc}"
        raise KafkaError(msg) from exc
    finally:
        consumer.close()


class AsyncBatchConsumer:
    """An aiokafka consumer that yields lists of messages and commits only when told to.

    async with AsyncBatchConsumer(servers, group, [topic]) as consumer:
        async for batch in consumer.batches():
            handle(batch)
            await consumer.commit()      # offsets only after the effects
    """

    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        topics: Sequence[str] = (),
        *,
        pattern: str | None = None,
        auto_offset_reset: str = "earliest",
        session_timeout_ms: int = 10_000,
        max_records: int = 5_000,
        timeout_ms: int = 500,
    ) -> None:
        from aiokafka import AIOKafkaConsumer

        self._topics = list(topics)
        self._pattern = pattern
        self._max_records = max_records
        self._timeout_ms = timeout_ms
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(session_timeout_ms // 5, 500),
            metadata_max_age_ms=5_000,
        )

    async def __aenter__(self) -> AsyncBatchConsumer:
        from aiokafka.errors import KafkaError as AioKafkaError

        try:
            await self._consumer.start()
        except AioKafkaError as exc:
            msg = f"consumer cannot start: {exc}"
            raise KafkaError(msg) from exc
        if self._pattern:
            self._consumer.subscribe(pattern=self._pattern)
        else:
            self._consumer.subscribe(self._topics)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def getmany(self) -> list[Message]:
        found = await self._consumer.getmany(timeout_ms=self._timeout_ms, max_records=self._max_records)
        batch = [
            Message(
                m.topic,
                m.partition,
                m.offset,
                m.key,
                m.value,
                m.timestamp,
                tuple((k, bytes(v)) for k, v in (m.headers or ())),
            )
            for records in found.values()
            for m in records
        ]
        batch.sort(key=lambda m: (m.topic, m.partition, m.offset))
        return batch

    async def batches(self) -> AsyncIterator[list[Message]]:
        while True:
            batch = await self.getmany()
            if batch:
                yield batch
            else:
                await asyncio.sleep(0)

    async def commit(self) -> None:
        await self._consumer.commit()
