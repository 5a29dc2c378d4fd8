"""Kafka plumbing: client credentials, the consumed ``Message``, and an idempotent batching producer.

confluent-kafka produces (idempotent, batched). Topics and offsets: ``streams.kafka_admin``;
consumers: ``streams.kafka_readers``. Every broker failure surfaces as ``streams.errors.KafkaError``.

    producer = BatchProducer(stack.bootstrap_servers)
    producer.send(topic, key, value)
    producer.flush()          # raises KafkaError if any delivery failed
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import confluent_kafka

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
LIBRDKAFKA_LOG = logging.getLogger("streams.librdkafka")
CONSUMER_LOG = logging.getLogger("streams.consumer")
rate_limit(LIBRDKAFKA_LOG)  # a client that cannot reach the broker reports every attempt
rate_limit(CONSUMER_LOG)
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
    fetched_ms: int = 0  # when this process's client received it from the broker (0: not known)


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
POLL_EVERY = 64  # records between two serves of delivery reports (a poll per record was ~1 us of its ~7)
_Pending = tuple[str, bytes | str | None, bytes | None, _Headers, int | None]  # ..., partition (None: by key)


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
            "logger": LIBRDKAFKA_LOG,
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
        LIBRDKAFKA_LOG.warning("producer: %s", err)

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
        LIBRDKAFKA_LOG.warning("producer recreated after a fatal error; %d records to send again", len(self._retry))

    def _produce(self, sequence: int, item: _Pending) -> None:
        topic, key, value, headers, partition = item
        while True:
            if self._fatal:
                self._recreate()
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=headers,
                    on_delivery=functools.partial(self._delivered, sequence),
                    partition=-1 if partition is None else partition,  # -1: librdkafka's partitioner
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
        partition: int | None = None,
    ) -> None:
        """Queue one record, to ``partition`` (None: the partition of its key's hash)."""
        self._sequence += 1
        copied: _Headers = list(headers) if headers else []  # kept to send again: the caller may reuse its list
        self._produce(self._sequence, (topic, key, value, copied, partition))
        if self._sequence % POLL_EVERY == 0:  # serve delivery reports; a full queue polls in _produce
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
                LIBRDKAFKA_LOG.warning("producer made no progress for %.0fs: recreating it", self._stall_s)
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
