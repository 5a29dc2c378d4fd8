"""The bridge: every per-miner score topic checked and copied, unchanged, into the validator's inbox.

Faust cannot pattern-subscribe on every broker, so a plain consumer subscribes to the miner
topic pattern (new miners are picked up within the metadata refresh) and forwards each record
with its key, value and source position as headers. Only records that the miner of the topic
signed reach the inbox: unsigned, mis-signed or unbound records, and copies of a record already
forwarded, go to ``dlq.scores`` with the reason and are never charged to the miner they claim to
be (see ``validator.identity``). Offsets are committed only after the forwarded records are
flushed: at-least-once, and the validator ignores redeliveries by source position.

    await run_bridge(servers, "validator-bridge", topics, BatchProducer(servers), keys)
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.deadletter import (
    SOURCE_OFFSET,
    SOURCE_PARTITION,
    SOURCE_TOPIC,
    DeadLetter,
    send_dead_letter,
    source_headers,
)
from streams.errors import KafkaError
from streams.kafka import BatchProducer, Message
from streams.kafka_readers import AsyncBatchConsumer
from streams.signing import INBOX, SignatureError, Signer, verify_forwarded
from streams.submission import bucket_of_key
from streams.topics import TopicNames
from validator.identity import IdentityError, KeyBook
from validator.tables import source_position
from validator.watermark import MARKER_VALUE, marker_headers

log = logging.getLogger(__name__)
FLUSH_SLICE_S = 0.2  # how soon a watermark flush notices that the bridge is stopping


@dataclass(frozen=True, slots=True)
class InboxRecord:
    """A miner record as the validator sees it: original key and bytes, and where it was written."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    signature: tuple[tuple[str, bytes], ...] = ()  # the sender's signature headers, where they are kept
    seen_ms: int | None = None  # when the bridge first saw it (its signed time): the trusted arrival time
    # the newest bridge watermark before it on its inbox partition: it reached the broker after this time
    after_ms: int | None = None

    @property
    def position(self) -> str:
        return source_position(self.topic, self.partition, self.offset)

    def headers(self, error: str | None = None) -> list[tuple[str, bytes]]:
        """Its source position as headers; with ``error``, the headers of its dead letter."""
        if error is None:
            return source_headers(self.topic, self.partition, self.offset)
        return self.dead_letter(error).headers()

    def dead_letter(self, reason: str) -> DeadLetter:
        return DeadLetter(self.key, self.value, self.topic, self.partition, self.offset, reason)

    @classmethod
    def from_message(
        cls, key: bytes | None, value: bytes | None, headers: Any, topic: str, partition: int, offset: int
    ) -> InboxRecord:
        """From an inbox message; its headers name the source (else the inbox position is used)."""
        found = _header_map(headers)
        try:
            return cls(
                key,
                value,
                found[SOURCE_TOPIC].decode(),
                int(found[SOURCE_PARTITION]),
                int(found[SOURCE_OFFSET]),
            )
        except (KeyError, ValueError, UnicodeDecodeError):
            return cls(key, value, topic, partition, offset)


def _header_map(headers: Any) -> dict[str, bytes]:
    if not headers:
        return {}
    pairs: Iterable[Any] = headers.items() if isinstance(headers, dict) else headers
    found: dict[str, bytes] = {}
    for name, value in pairs:
        text = name.decode() if isinstance(name, bytes) else str(name)
        found[text] = bytes(value) if value is not None else b""
    return found


@dataclass(slots=True)
class Gate:
    """Decides which miner records enter the validator: signed by the miner of their topic, once.

    gate = Gate(KeyBook(table, allow_list), topics)
    reason = gate.check(message)        # None: forward it; else the dead-letter reason
    """

    keys: KeyBook
    topics: TopicNames
    signer: Signer | None = None  # the validator's: what it forwards is signed, so the inbox cannot be forged
    unbound_grace_s: float = 30.0
    remember: int = 200_000  # signatures of forwarded records kept to spot copies
    _seen: OrderedDict[bytes, str] = field(default_factory=OrderedDict)
    _unbound_since: dict[str, float] = field(default_factory=dict)

    def check(self, m: Message) -> str | None:
        return self.check_record(m.topic, m.partition, m.offset, m.key, m.value, m.headers)

    def check_record(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, headers: Any
    ) -> str | None:
        """None if the miner of ``topic`` signed this record and it is not a copy of another; else why not."""
        position = source_position(topic, partition, offset)
        miner = self.topics.miner_id_of(topic)
        if miner is None:
            return f"source topic {topic!r} is not a miner score topic"
        try:
            claim = self.keys.verify_score(miner, key, value, headers)
        except IdentityError as exc:
            return f"not sent by {miner}: {exc}"
        first = self._seen.get(claim.signature)
        if first is not None and first != position:
            return f"a copy of the record at {first}: each signed record counts once"
        self._seen[claim.signature] = position
        self._seen.move_to_end(claim.signature)
        while len(self._seen) > self.remember:
            self._seen.popitem(last=False)
        return None

    def waiting_for(self, messages: Sequence[Message], now: float) -> set[str]:
        """Miners of ``messages`` with no key yet that are still within their grace (registrations lag)."""
        waiting = set()
        for m in messages:
            miner = self.topics.miner_id_of(m.topic)
            if miner is None or self.keys.key_of(miner) is not None:
                continue
            since = self._unbound_since.setdefault(miner, now)
            if now - since < self.unbound_grace_s:
                waiting.add(miner)
        return waiting


def seen_at(message: Message, now_ms: int, *, log_append_time: bool = True) -> int:
    """The trusted arrival time of a record: the broker's append time where the topic records it
    (and ``log_append_time`` trusts it), else when the bridge's client fetched it (the bridge may
    take it up later, after a busy spell), else when the bridge saw it; never the sender's clock."""
    if log_append_time and message.log_append_time:
        return message.timestamp_ms
    return min(message.fetched_ms, now_ms) if message.fetched_ms > 0 else now_ms


def forward(
    producer: BatchProducer,
    inbox: str,
    messages: Sequence[Message],
    gate: Gate,
    *,
    log_append_time: bool = True,
    partitions: int | None = None,
) -> int:
    """Forward what the gate lets through, dead-letter the rest; returns how many were dead-lettered.

    The bridge's signature on a forwarded record carries its trusted arrival time (``seen_at``).
    With ``partitions`` (several workers) a chunk of bucket ``b`` goes to inbox partition ``b mod
    partitions``, as each worker's share of the ensemble is cut, so the workers get even shares of
    every date (a key's hash put 12 of 16 buckets of a date in one half of 4 partitions); other
    records, and every record without ``partitions``, go by their key's hash.
    """
    dead = 0
    now = int(time.time() * 1000)
    for m in messages:
        record = InboxRecord(m.key, m.value, m.topic, m.partition, m.offset)
        reason = gate.check(m)
        if reason is None:
            headers = record.headers()
            if gate.signer is not None:
                seen = seen_at(m, now, log_append_time=log_append_time)
                headers += gate.signer.headers(INBOX, m.key, m.value, batch_id=record.position, signed_at_ms=seen)
            bucket = bucket_of_key(m.key) if partitions else None
            if bucket is None or partitions is None:
                producer.send(inbox, m.key, m.value, headers=headers)
            else:
                producer.send(inbox, m.key, m.value, headers=headers, partition=bucket % partitions)
            continue
        dead += 1
        send_dead_letter(producer, gate.topics.dlq("scores"), DeadLetter.of(m, reason))
        log.warning("record at %s dead-lettered: %s", record.position, reason)
    return dead


class MarkerSender:
    """Writes a bridge watermark to every partition of the inbox (``partitions`` of them)."""

    def __init__(self, make_producer: Callable[[], Any], inbox: str, partitions: int, *, flush_s: float = 30.0) -> None:
        self._make_producer = make_producer  # a confluent_kafka.Producer: markers go to named partitions
        self.producer: Any = None  # made on the first marker, by the running bridge
        self.inbox = inbox
        self.partitions = partitions
        self.flush_s = flush_s

    def send(self, signer: Signer, at_ms: int, stop: threading.Event | None = None) -> None:
        """Write and flush one watermark per partition, for up to ``flush_s``; ``stop`` (the bridge
        is stopping) ends the wait within ``FLUSH_SLICE_S``.

        It runs in a worker thread, which a cancelled bridge cannot interrupt and the interpreter
        waits for at exit: without ``stop`` a stop could hang on it. A watermark left undelivered
        is lost harmlessly: it only says "read up to here", and the next bridge writes a newer one.
        """
        if self.producer is None:
            self.producer = self._make_producer()
        for partition in range(self.partitions):
            headers = marker_headers(signer, at_ms, partition)
            self.producer.produce(self.inbox, value=MARKER_VALUE, partition=partition, headers=headers)
        deadline = time.monotonic() + self.flush_s
        remaining = self.producer.flush(0)
        while remaining and time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            remaining = self.producer.flush(FLUSH_SLICE_S)
        if remaining:
            msg = f"{remaining} watermarks not delivered to {self.inbox}"
            raise KafkaError(msg)


def forwarded_by_bridge(public_key: str, record: InboxRecord, headers: Any) -> str | None:
    """None if the validator's bridge forwarded ``record`` from the source it names; else why not."""
    try:
        source = verify_forwarded(public_key, record.key, record.value, headers)
    except SignatureError as exc:
        return f"inbox record not forwarded by the bridge: {exc}"
    if source != record.position:
        return f"inbox record forwarded from {source}, not {record.position}"
    return None


async def wait_for_keys(gate: Gate, messages: Sequence[Message], *, poll_s: float = 0.2) -> None:
    """Hold a batch while a miner in it is unbound and within its grace (its registration may be in flight)."""
    while gate.waiting_for(messages, time.monotonic()):
        await asyncio.sleep(poll_s)


async def run_bridge(
    bootstrap_servers: str,
    group_id: str,
    topics: TopicNames,
    producer: BatchProducer,
    gate: Gate,
    *,
    session_timeout_ms: int = 10_000,
    max_records: int = 5_000,
    markers: MarkerSender | None = None,
    watermark_interval_s: float = 0.5,
    log_append_time: bool = True,
    on_reading: Callable[[], None] | None = None,
    assign_matching_s: float | None = None,
    inbox_partitions: int | None = None,
    fetch_max_wait_ms: int = 500,
) -> None:
    """Forward until cancelled; a forward that cannot be flushed stops here before committing.

    With ``markers``, whenever the bridge has forwarded everything that was on the broker (at most
    every ``watermark_interval_s``) it writes a signed watermark to every inbox partition.
    ``on_reading`` is called once the bridge has read what was on the broker when it started:
    from then on it stamps what arrives as it arrives (before, a backlog shares one instant).
    ``assign_matching_s``: take every miner topic's partitions itself (``AsyncBatchConsumer``).
    ``inbox_partitions``: route chunks by bucket (``forward``), for several workers.
    ``fetch_max_wait_ms``: the resolution of arrival times where the fetch's time is the evidence.
    """
    stopping = threading.Event()  # set when the bridge stops: a watermark flush under way gives up
    try:
        async with AsyncBatchConsumer(
            bootstrap_servers,
            group_id,
            pattern=topics.miner_scores_pattern,
            session_timeout_ms=session_timeout_ms,
            max_records=max_records,
            assign_matching_s=assign_matching_s,
            fetch_max_wait_ms=fetch_max_wait_ms,
        ) as consumer:
            marked = 0.0
            reading = False
            while True:
                batch = await consumer.getmany()
                if batch:
                    await wait_for_keys(gate, batch)
                    forward(
                        producer, topics.validator_inbox, batch, gate,
                        log_append_time=log_append_time, partitions=inbox_partitions,
                    )  # fmt: skip
                    await asyncio.to_thread(producer.flush)
                    await consumer.commit()
                    log.debug("bridge forwarded %d records", len(batch))
                else:
                    await asyncio.sleep(0)
                if on_reading is not None and not reading and len(batch) < max_records and await consumer.caught_up():
                    reading = True
                    on_reading()
                if markers is None or gate.signer is None or len(batch) >= max_records:
                    continue
                if time.monotonic() - marked < watermark_interval_s:
                    continue
                at_ms = int(time.time() * 1000)  # before the end offsets are asked for
                try:  # forwarding never waits on it: a join or rebalance under way just means "not yet"
                    caught_up = await asyncio.wait_for(consumer.caught_up(), timeout=watermark_interval_s * 4)
                except TimeoutError:
                    caught_up = False
                marked = time.monotonic() if not caught_up else marked
                if caught_up:
                    try:
                        await asyncio.to_thread(markers.send, gate.signer, at_ms, stopping)
                    except KafkaError as exc:  # the next round of the loop tries again; forwarding goes on
                        log.warning("watermark not written: %s", exc)
                        continue
                    marked = time.monotonic()
    finally:
        stopping.set()
