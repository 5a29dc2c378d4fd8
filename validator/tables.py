"""The validator's state: key layout, the value of a stored chunk, and the Faust tables.

Every key starts with the processing date, so a date's state is found by prefix and old dates
expire together. Values are JSON dicts; a chunk keeps the miner's original Avro bytes (base64, no
re-encoding of the record) beside its source position.

    tables = define_tables(app, settings)            # Faust tables (changelogged)
    tables = ValidatorTables.in_memory()             # plain dicts, for tests and tools
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

SEP = "|"
ANY_NETWORK = "*"
ALERT = "alert"
CLUSTER = "cluster"

Table = MutableMapping[str, Any]


def round_key(date: dt.date, network: str) -> str:
    """Key of one (date, network) round in ``batches``."""
    return f"{date.isoformat()}{SEP}{network}"


def parse_round_key(key: str) -> tuple[dt.date, str]:
    date, network = key.split(SEP, 1)
    return dt.date.fromisoformat(date), network


def miner_key(date: dt.date, network: str, miner_id: str) -> str:
    """Key of one miner's facts of a round in ``stats`` and ``results``."""
    return f"{round_key(date, network)}{SEP}{miner_id}"


def chunk_id(kind: str, bucket: int, chunk: int) -> str:
    return f"{kind}{SEP}{bucket:05d}{SEP}{chunk:05d}"


def chunk_key(date: dt.date, network: str, miner_id: str, kind: str, bucket: int, chunk: int) -> str:
    """Key of one stored chunk: a resubmission of the same chunk replaces it."""
    return f"{miner_key(date, network, miner_id)}{SEP}{chunk_id(kind, bucket, chunk)}"


def date_of_key(key: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(key.split(SEP, 1)[0])
    except ValueError:
        return None


def source_position(topic: str, partition: int, offset: int) -> str:
    return f"{topic}:{partition}:{offset}"


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as stored: where it was read from and the miner's original bytes."""

    topic: str
    partition: int
    offset: int
    data: bytes

    @property
    def position(self) -> str:
        return source_position(self.topic, self.partition, self.offset)

    def to_value(self) -> dict[str, Any]:
        # base64 in a JSON value: Faust's changelog recovery decodes raw values as text
        return {"t": self.topic, "p": self.partition, "o": self.offset, "d": base64.b64encode(self.data).decode()}

    @classmethod
    def from_value(cls, value: Mapping[str, Any]) -> StoredChunk:
        return cls(str(value["t"]), int(value["p"]), int(value["o"]), base64.b64decode(value["d"]))


def keys_with_prefix(table: Table, prefix: str) -> list[str]:
    return sorted(k for k in list(table.keys()) if k.startswith(prefix))


def items_with_prefix(table: Table, prefix: str) -> Iterator[tuple[str, Any]]:
    for key in keys_with_prefix(table, prefix):
        value = table.get(key)
        if value is not None:
            yield key, value


@dataclass
class ValidatorTables:
    """The tables the validator keeps (Faust tables in the worker, dicts in tests).

    batches  round_key -> round state (dict)             never expired (small)
    chunks   chunk_key -> StoredChunk value               expired after retention
    stats    miner_key -> facts counted as records arrive  expired after retention
    results  miner_key -> immediate verdict and weight     never expired (small)
    weights  miner_id  -> {date: final score}              never expired
    index    date      -> {topic: {partition: first offset}} for replay, never expired
    """

    batches: Table = field(default_factory=dict)
    chunks: Table = field(default_factory=dict)
    stats: Table = field(default_factory=dict)
    results: Table = field(default_factory=dict)
    weights: Table = field(default_factory=dict)
    index: Table = field(default_factory=dict)

    @classmethod
    def in_memory(cls) -> ValidatorTables:
        return cls()


def define_tables(app: Any, partitions: int) -> ValidatorTables:
    """Faust tables with changelogs; ``use_partitioner`` lets timers and replays write them too."""

    import faust

    def table(name: str) -> Table:
        schema: Any = faust.Schema(key_type=str, key_serializer="json", value_serializer="json")
        created: Table = app.Table(name, default=None, schema=schema, partitions=partitions, use_partitioner=True)
        return created

    return ValidatorTables(
        batches=table("batches"),
        chunks=table("chunks"),
        stats=table("stats"),
        results=table("results"),
        weights=table("weights"),
        index=table("index"),
    )
