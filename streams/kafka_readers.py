"""Kafka consumers: a bounded raw read of topic ranges, and an async batch consumer that commits when told.

Every broker failure surfaces as ``streams.errors.KafkaError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

import confluent_kafka

from streams.errors import KafkaError
from streams.kafka import CONSUMER_LOG, LIBRDKAFKA_LOG, Message, aiokafka_security, client_security
from streams.kafka_admin import admin, matching_partitions


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
                "logger": LIBRDKAFKA_LOG,
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
        fetch_max_wait_ms: int = 500,
        on_progress: Callable[[str], None] | None = None,
        start_timeout_s: float | None = None,
        assign_matching_s: float | None = None,
    ) -> None:
        """``assign_matching_s``: with ``pattern``, take every matching partition itself (no group
        rebalance), looking for new topics that often; the group only keeps the committed offsets.
        A group subscription fetches nothing while it rejoins for each new topic (seconds); only
        one consumer of the group may run this way."""
        from aiokafka import AIOKafkaConsumer

        self._assign_matching_s = assign_matching_s if pattern else None
        self._bootstrap_servers = bootstrap_servers
        self._admin: Any = None  # made on the first look for matching topics, then reused
        self._matched_at = 0.0  # monotonic time of the last look for matching topics
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
            fetch_max_wait_ms=fetch_max_wait_ms,
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
                CONSUMER_LOG.warning("consumer cannot reach the broker yet, retrying: %s", exc)
                with contextlib.suppress(Exception):
                    await self._consumer.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                self._consumer = self._make()
        if self._assign_matching_s is not None:
            await self._assign_matching()
        elif self._pattern:
            self._consumer.subscribe(pattern=self._pattern)
        else:
            self._consumer.subscribe(self._topics)
        return self

    async def _assign_matching(self) -> None:
        """Assign every partition of the topics matching the pattern, if that set grew."""
        from aiokafka import TopicPartition

        self._matched_at = time.monotonic()
        try:
            if self._admin is None:
                self._admin = admin(self._bootstrap_servers)
            found = await asyncio.to_thread(matching_partitions, self._admin, str(self._pattern))
        except KafkaError as exc:  # the next look tries again; what is assigned keeps being read
            CONSUMER_LOG.warning("cannot list the topics matching %s: %s", self._pattern, exc)
            return
        wanted = {TopicPartition(topic, p) for topic, parts in found.items() for p in parts}
        if wanted - set(self._consumer.assignment()):
            # positions restart from the committed offsets: commit before ``getmany`` looks again
            self._consumer.assign(sorted(wanted | set(self._consumer.assignment())))

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def getmany(self) -> list[Message]:
        if self._assign_matching_s is not None and time.monotonic() - self._matched_at >= self._assign_matching_s:
            await self._assign_matching()
        found = await self._consumer.getmany(timeout_ms=self._timeout_ms, max_records=self._max_records)
        # read before anything awaits: a partition's records are fetched again only once its buffer is drained,
        # so this is the time of the fetch response that brought them
        fetched = {tp: int(self._consumer.last_poll_timestamp(tp) or 0) for tp in found}
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
                fetched[tp],
            )
            for tp, records in found.items()
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
