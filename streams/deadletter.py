"""One dead-letter record for every service: a record that cannot be used, its source message and why.

A bad record is data, not a crash: it goes to ``dlq.<source>`` with its original key and bytes
and these headers (names kept from the first dead-letter topics), is counted, and processing
goes on. Every agent and the warehouse sink build their dead letters here.

    letter = DeadLetter.of(message, "undecodable: unknown schema id 99")
    send_dead_letter(producer, topics.dlq("scores"), letter)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import Counter

from streams.kafka import Message, Producer

ERROR = "error"
SOURCE_TOPIC = "source_topic"
SOURCE_PARTITION = "source_partition"
SOURCE_OFFSET = "source_offset"
MAX_REASON_BYTES = 4000

__all__ = [
    "ERROR",
    "SOURCE_OFFSET",
    "SOURCE_PARTITION",
    "SOURCE_TOPIC",
    "DeadLetter",
    "send_dead_letter",
    "source_headers",
]

DEAD_LETTERS = Counter(
    "riskstream_dead_letters", "Records sent to a dead-letter topic, by dead-letter topic.", ["topic"]
)


def source_headers(topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    """Headers that name where a record was first written (a forwarded record keeps them)."""
    return [
        (SOURCE_TOPIC, topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
    ]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that could not be used: its original key and bytes, where it was read, and the reason.

    letter = DeadLetter.of(message, "ValidationResult on ensemble.alerts")
    letter.headers()   # [("error", b"..."), ("source_topic", b"ensemble.alerts"), ...]
    """

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    reason: str

    @classmethod
    def of(cls, message: Message, reason: str) -> DeadLetter:
        return cls(message.key, message.value, message.topic, message.partition, message.offset, reason)

    def headers(self) -> list[tuple[str, bytes]]:
        return [(ERROR, self.reason.encode()[:MAX_REASON_BYTES])] + source_headers(
            self.topic, self.partition, self.offset
        )

    @classmethod
    def from_headers(
        cls, key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes | None]]
    ) -> DeadLetter:
        """Read a dead letter back from a dead-letter topic (raises ValueError if a header is missing)."""
        found = {name: (data or b"") for name, data in headers}
        try:
            return cls(
                key,
                value,
                found[SOURCE_TOPIC].decode(),
                int(found[SOURCE_PARTITION]),
                int(found[SOURCE_OFFSET]),
                found.get(ERROR, b"").decode(errors="replace"),
            )
        except (KeyError, UnicodeDecodeError) as exc:
            msg = f"not a dead letter: missing or bad header {exc}"
            raise ValueError(msg) from exc


def send_dead_letter(producer: Producer, dlq_topic: str, letter: DeadLetter) -> None:
    """Produce ``letter`` to ``dlq_topic`` with its original key and bytes; the caller flushes before committing."""
    producer.send(dlq_topic, letter.key, letter.value, headers=letter.headers())
    DEAD_LETTERS.labels(dlq_topic).inc()
