"""Kafka plumbing: an idempotent producer, an async batch consumer, topics, offsets.

confluent-kafka produces (idempotent, batched); aiokafka consumes inside asyncio services.
Every broker failure surfaces as ``streams.errors.KafkaError``.

    producer = BatchProducer(stack.bootstrap_servers)
    producer.send(topic, key, value)
    producer.flush()          # raises KafkaError if any delivery failed
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # re-exported at runtime

from streams.errors import KafkaError
from streams.logs import rate_limit, rate_limit_client_logs

# how every client of this process authenticates (``use_credentials``); empty: PLAINTEXT, as on the local broker
_SECURITY: dict[str, str] = {}


def use_credentials(protocol: str, mechanism: str = "", username: str = "", password: str = "") -> None:
    """Authenticate every Kafka client this process creates from now on (SASL/SCRAM in production).

    use_credentials("SASL_PLAINTEXT", "SCRAM-SHA-512", "miner-a", password)
    """
    _SECURITY.clear()
    if protocol.upper() == "PLAINTEXT":
        return
    _SECURITY.update({"security.protocol": protocol.upper()})
    if username:
        _SECURITY.update({"sasl.mechanism": mechanism, "sasl.username": username, "sasl.password": password})


def client_security() -> dict[str, str]:
    """The librdkafka settings of ``use_credentials`` (empty on a PLAINTEXT broker)."""
    return dict(_SECURITY)


def aiokafka_security() -> dict[str, Any]:
    """The same settings as aiokafka keyword arguments."""
    if not _SECURITY:
        return {}
    found: dict[str, Any] = {"security_protocol": _SECURITY["security.protocol"]}
    if "sasl.username" in _SECURITY:
        found |= {
            "sasl_mechanism": _SECURITY["sasl.mechanism"],
            "sasl_plain_username": _SECURITY["sasl.username"],
            "sasl_plain_password": _SECURITY["sasl.password"],
        }
    return found


# librdkafka logs connection failures to stderr itself; route them to logging instead
_LIBRDKAFKA_LOG = logging.getLogger("streams.librdkafka")
_CONSUMER_LOG = logging.getLogger("streams.consumer")
rate_limit(_LIBRDKAFKA_LOG)  # a client that cannot reach the broker reports every attempt
rate_limit(_CONSUMER_LOG)
rate_limit_client_logs()


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
    log_append_time: bool = False  # the broker, not the producer, set ``timestamp_ms``


class Producer(Protocol):
    """What services need of a producer: ``BatchProducer``, or a recording fake in unit tests."""

    def send(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None: ...

    def flush(self, timeout: float = 60.0) -> None: ...


# delivery errors after which the same bytes may be sent again: the broker did not take them, or
# the producer lost its idempotence state (broker restarted with another log); consumers de-duplicate
_RETRIABLE = frozenset(
    {
        confluent_kafka.KafkaError._MSG_TIMED_OUT,
        confluent_kafka.KafkaError._TRANSPORT,
        confluent_kafka.KafkaError._ALL_BROKERS_DOWN,
        confluent_kafka.KafkaError._PURGE_QUEUE,
        confluent_kafka.KafkaError._PURGE_INFLIGHT,
        confluent_kafka.KafkaError._FATAL,
        confluent_kafka.KafkaError.UNKNOWN_PRODUCER_ID,
        confluent_kafka.KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        confluent_kafka.KafkaError.NOT_LEADER_FOR_PARTITION,
        confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART,
        confluent_kafka.KafkaError.REQUEST_TIMED_OUT,
    }
)

_Headers = list[tuple[str, str | bytes | None]]
_Pending = tuple[str, bytes | str | None, bytes | None, _Headers]


class BatchProducer:
    """An idempotent confluent-kafka producer that batches; ``flush`` reports failed deliveries.

    It survives the broker: a fatal idempotence error (the broker restarted with another log,
    ``OUT_OF_ORDER_SEQUENCE_NUMBER`` / ``UNKNOWN_PRODUCER_ID``) recreates the client, and every
    record not yet acknowledged is sent again until ``flush``'s timeout (at-least-once: readers
    de-duplicate by key, version or source position).
    """

    def __init__(self, bootstrap_servers: str, *, stall_s: float = 15.0, **config: Any) -> None:
        settings: dict[str, Any] = {
            **client_security(),
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
        settings.setdefault("error_cb", self._client_error)
        self._config = settings
        self._producer = confluent_kafka.Producer(settings)
        self._errors: list[str] = []
        self._pending: dict[int, _Pending] = {}  # sent, not yet acknowledged
        self._retry: dict[int, _Pending] = {}  # refused for a reason that passes: send again
        self._sequence = 0
        self._fatal = False
        self._stall_s = stall_s
        self._progress = time.monotonic()  # last delivery report of any kind
        self.recreated = 0

    def _client_error(self, err: Any) -> None:
        if err.fatal():
            self._fatal = True
        _LIBRDKAFKA_LOG.warning("producer: %s", err)

    def _delivered(self, sequence: int, err: Any, msg: Any) -> None:
        self._progress = time.monotonic()
        sent = self._pending.pop(sequence, None)
        if err is None or sent is None:
            return
        if err.fatal():
            self._fatal = True
        if err.fatal() or self._fatal or err.code() in _RETRIABLE:
            self._retry[sequence] = sent
        else:
            self._errors.append(f"{msg.topic()}: {err}")

    def _recreate(self) -> None:
        """A fresh client (new producer id); unacknowledged records are sent again on the next flush."""
        old, self._producer = self._producer, confluent_kafka.Producer(self._config)
        with contextlib.suppress(Exception):
            old.purge(in_queue=True, in_flight=True)
            old.poll(0)  # purged records come back through _delivered into _retry
        self._retry.update(self._pending)
        self._pending.clear()
        self._fatal = False
        self.recreated += 1
        _LIBRDKAFKA_LOG.warning("producer recreated after a fatal error; %d records to send again", len(self._retry))

    def _produce(self, sequence: int, item: _Pending) -> None:
        topic, key, value, headers = item
        while True:
            if self._fatal:
                self._recreate()
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=headers,
                    on_delivery=lambda err, msg: self._delivered(sequence, err, msg),
                )
                self._pending[sequence] = item
                return
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.1)
            except confluent_kafka.KafkaException as exc:
                if exc.args and exc.args[0].fatal():
                    self._fatal = True
                    continue
                msg = f"produce to {topic} failed: {exc}"
                raise KafkaError(msg) from exc

    def send(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        self._sequence += 1
        copied: _Headers = [(name, data) for name, data in headers or ()]
        self._produce(self._sequence, (topic, key, value, copied))
        self._producer.poll(0)

    def send_many(self, topic: str, items: Iterable[tuple[bytes | str | None, bytes | None]]) -> int:
        count = 0
        for key, value in items:
            self.send(topic, key, value)
            count += 1
        return count

    def flush(self, timeout: float = 60.0) -> None:
        """Wait for every delivery; records refused for a passing reason are sent again until ``timeout``."""
        deadline = time.monotonic() + timeout
        self._progress = max(self._progress, time.monotonic() - 1.0)
        while True:
            left = max(deadline - time.monotonic(), 0.0)
            remaining = self._producer.flush(min(left, 1.0))
            if remaining and time.monotonic() - self._progress > self._stall_s:
                # no delivery report for a while: a broker that forgot this producer id makes
                # librdkafka retry UNKNOWN_PRODUCER_ID forever without a fatal error
                _LIBRDKAFKA_LOG.warning("producer made no progress for %.0fs: recreating it", self._stall_s)
                self._fatal = True
                self._progress = time.monotonic()
            if self._fatal:
                self._recreate()
            if self._retry and time.monotonic() < deadline:
                again, self._retry = sorted(self._retry.items()), {}
                for sequence, item in again:
                    self._produce(sequence, item)
                continue
            if remaining and time.monotonic() < deadline:
                continue
            break
        errors, self._errors = self._errors, []
        if self._retry:
            errors.append(f"{len(self._retry)} records not accepted by the broker within {timeout}s")
            self._retry.clear()
        if remaining:
            errors.append(f"{remaining} messages still queued after {timeout}s")
        if errors:
            msg = f"{len(errors)} deliveries failed, first: {errors[0]}"
            raise KafkaError(msg)


def admin(bootstrap_servers: str) -> AdminClient:
    config: dict[str, Any] = {**client_security(), "bootstrap.servers": bootstrap_servers, "logger": _LIBRDKAFKA_LOG}
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
        {
            **client_security(),
            "bootstrap.servers": bootstrap_servers,
            "group.id": "riskstream-offsets",
            "logger": _LIBRDKAFKA_LOG,
        }
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
        {
            **client_security(),
            "bootstrap.servers": bootstrap_servers,
            "group.id": "riskstream-offsets",
            "logger": _LIBRDKAFKA_LOG,
        }
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


class RangeReader:
    """Reads (topic, partition) ranges from given offsets with a raw consumer, bounded in time.

    with RangeReader(servers, {"scores.m1": {0: 120, 1: 98}}) as reader:
        for batch in reader.batches(timeout_s=60, to_end=True):
            keep(batch)
        reader.reached_end   # False: the timeout ended the read

    The end of a partition is where it goes quiet (``idle_s``) past the high watermark read
    at the start: some brokers report a watermark short of the last batch, so the watermark
    alone never ends a read. Offsets are never committed (a throw-away group).
    """

    def __init__(self, bootstrap_servers: str, starts: Mapping[str, Mapping[int, int]], *, idle_s: float = 1.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.idle_s = idle_s
        self.reached_end = False
        self._starts = {topic: dict(parts) for topic, parts in starts.items()}
        self._consumer = confluent_kafka.Consumer(
            {
                **client_security(),
                "bootstrap.servers": bootstrap_servers,
                "group.id": f"riskstream-range-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
                "logger": _LIBRDKAFKA_LOG,
            }
        )

    def __enter__(self) -> RangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._consumer.close()

    def batches(self, timeout_s: float, *, to_end: bool = True, max_records: int = 5_000) -> Iterator[list[Message]]:
        """Batches (possibly empty) until the end of every range (``to_end``) or ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        assignment = [
            confluent_kafka.TopicPartition(topic, int(p), int(offset))
            for topic, parts in sorted(self._starts.items())
            for p, offset in sorted(parts.items())
        ]
        if not assignment:
            self.reached_end = True
            return
        try:
            ends = {
                (tp.topic, tp.partition): self._consumer.get_watermark_offsets(tp, timeout=10.0)[1] for tp in assignment
            }
            self._consumer.assign(assignment)
            position = {(tp.topic, tp.partition): max(tp.offset, 0) for tp in assignment}
            quiet_since = time.monotonic()
            while time.monotonic() < deadline:
                batch: list[Message] = []
                for m in self._consumer.consume(max_records, timeout=0.2):
                    error = m.error()
                    if error is not None:
                        if error.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                            continue
                        msg = f"read of {m.topic()} failed: {error}"
                        raise KafkaError(msg)
                    topic, partition, offset = str(m.topic()), int(m.partition() or 0), int(m.offset() or 0)
                    position[(topic, partition)] = offset + 1
                    batch.append(_message(m))
                if batch:
                    quiet_since = time.monotonic()
                yield batch
                reached = all(position[tp] >= end for tp, end in ends.items())
                if to_end and reached and time.monotonic() - quiet_since >= self.idle_s:
                    self.reached_end = True
                    return
        except confluent_kafka.KafkaException as exc:
            msg = f"read of {sorted(self._starts)} failed: {exc}"
            raise KafkaError(msg) from exc


def _message(m: Any) -> Message:
    _, ms = m.timestamp()
    return Message(
        str(m.topic()),
        int(m.partition() or 0),
        int(m.offset() or 0),
        m.key(),
        m.value(),
        int(ms),
        tuple((k, bytes(v or b"")) for k, v in (m.headers() or ())),
    )


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
        on_progress: Callable[[str], None] | None = None,
        start_timeout_s: float | None = None,
    ) -> None:
        from aiokafka import AIOKafkaConsumer

        self._on_progress = on_progress
        self._start_timeout_s = start_timeout_s
        self._next: dict[Any, int] = {}  # TopicPartition -> next offset handed out
        self._handed = 0  # records handed out since the last commit
        self._topics = list(topics)
        self._pattern = pattern
        self._max_records = max_records
        self._timeout_ms = timeout_ms
        self._make: Callable[[], Any] = lambda: AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(session_timeout_ms // 5, 500),
            metadata_max_age_ms=5_000,
            **aiokafka_security(),
        )
        self._consumer = self._make()

    async def __aenter__(self) -> AsyncBatchConsumer:
        """Start, retrying while the broker cannot be reached (a service outlives a broker outage).

        Gives up with ``KafkaError`` only after ``start_timeout_s`` (None: keeps trying).
        """
        from aiokafka.errors import KafkaError as AioKafkaError

        deadline = None if self._start_timeout_s is None else time.monotonic() + self._start_timeout_s
        delay = 0.5
        while True:
            try:
                await self._consumer.start()
                break
            except AioKafkaError as exc:
                if deadline is not None and time.monotonic() > deadline:
                    msg = f"consumer cannot start: {exc}"
                    raise KafkaError(msg) from exc
                _CONSUMER_LOG.warning("consumer cannot reach the broker yet, retrying: %s", exc)
                with contextlib.suppress(Exception):
                    await self._consumer.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                self._consumer = self._make()
        if self._pattern:
            self._consumer.subscribe(pattern=self._pattern)
        else:
            self._consumer.subscribe(self._topics)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def getmany(self) -> list[Message]:
        found = await self._consumer.getmany(timeout_ms=self._timeout_ms, max_records=self._max_records)
        for tp, records in found.items():
            if records:
                self._next[tp] = records[-1].offset + 1
                self._handed += len(records)
        batch = [
            Message(
                m.topic,
                m.partition,
                m.offset,
                m.key,
                m.value,
                m.timestamp,
                tuple((k, bytes(v)) for k, v in (m.headers or ())),
                m.timestamp_type == 1,
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
        if self._on_progress is not None:
            self._on_progress(f"committed {self._handed} records")
        self._handed = 0

    def lag(self) -> int | None:
        """Records behind the high watermarks of the last fetches (None before any fetch answered).

        On brokers whose watermark lags the last batch this under-counts; it never over-counts.
        """
        total, known = 0, False
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            known = True
            total += max(high - self._next.get(tp, high), 0)
        return total if known else None

    async def caught_up(self) -> bool:
        """Every assigned partition has been read up to the end offset asked for now.

        False while no partition is assigned (a group join under way), unless no topic matches
        the subscription at all. Call it after ``getmany`` returned fewer than ``max_records``
        (nothing buffered is left behind).
        """
        from aiokafka.errors import KafkaError as AioKafkaError

        consumer = self._consumer
        try:
            assigned = consumer.assignment()
            if not assigned:
                # the topics the subscription matched so far (no metadata request: one during a group join
                # would make the consumer join again)
                return not consumer.subscription()
            ends = await consumer.end_offsets(list(assigned))
            for tp in assigned:
                if await consumer.position(tp) < ends[tp]:
                    return False
        except AioKafkaError:  # a rebalance took a partition away meanwhile: not known to be caught up
            return False
        return True
