"""The bridge: every per-miner score topic copied, unchanged, into the validator's inbox topic.

Faust cannot pattern-subscribe on every broker, so a plain consumer subscribes to the miner
topic pattern (new miners are picked up within the metadata refresh) and forwards each record
with its key, value and source position as headers. Offsets are committed only after the
forwarded records are flushed: at-least-once, and the validator ignores redeliveries by source
position.

    await run_bridge(servers, "validator-bridge", topics, BatchProducer(servers))
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from streams.kafka import AsyncBatchConsumer, BatchProducer, Message
from streams.topics import TopicNames
from validator.tables import source_position

SOURCE_TOPIC = "source_topic"
SOURCE_PARTITION = "source_partition"
SOURCE_OFFSET = "source_offset"
ERROR = "error"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InboxRecord:
    """A miner record as the validator sees it: original key and bytes, and where it was written."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int

    @property
    def position(self) -> str:
        return source_position(self.topic, self.partition, self.offset)

    def headers(self, error: str | None = None) -> list[tuple[str, bytes]]:
        found = [
            (SOURCE_TOPIC, self.topic.encode()),
            (SOURCE_PARTITION, str(self.partition).encode()),
            (SOURCE_OFFSET, str(self.offset).encode()),
        ]
        if error is not None:
            found.insert(0, (ERROR, error.encode()[:4000]))
        return found

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


def forward(producer: BatchProducer, inbox: str, messages: Sequence[Message]) -> None:
    for m in messages:
        record = InboxRecord(m.key, m.value, m.topic, m.partition, m.offset)
        producer.send(inbox, m.key, m.value, headers=record.headers())


async def run_bridge(
    bootstrap_servers: str,
    group_id: str,
    topics: TopicNames,
    producer: BatchProducer,
    *,
    session_timeout_ms: int = 10_000,
    max_records: int = 5_000,
) -> None:
    """Forward until cancelled; a forward that cannot be flushed stops here before committing."""
    async with AsyncBatchConsumer(
        bootstrap_servers,
        group_id,
        pattern=topics.miner_scores_pattern,
        session_timeout_ms=session_timeout_ms,
        max_records=max_records,
    ) as consumer:
        async for batch in consumer.batches():
            forward(producer, topics.validator_inbox, batch)
            await asyncio.to_thread(producer.flush)
            await consumer.commit()
            log.debug("bridge forwarded %d records", len(batch))
