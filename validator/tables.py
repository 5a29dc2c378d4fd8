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
import hashlib
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

SEP = "|"
ANY_NETWORK = "*"
ALERT = "alert"
CLUSTER = "cluster"

Table = MutableMapping[str, Any]


@dataclass(frozen=True, slots=True, order=True)
class RoundKey:
    """One (date, network) round; ``text`` is its key in ``batches`` and the prefix of its other keys.

    key = RoundKey(dt.date(2026, 1, 2), "ethereum")
    key.text, key.prefix, key.miner("m1"), RoundKey.parse(key.text) == key
    """

    date: dt.date
    network: str

    @property
    def text(self) -> str:
        return f"{self.date.isoformat()}{SEP}{self.network}"

    @property
    def prefix(self) -> str:
        """Every key of this round's chunks, facts and ensembles starts with it."""
        return self.text + SEP

    def miner(self, miner_id: str) -> str:
        """Key of one miner's facts of this round in ``stats`` and ``results``."""
        return f"{self.text}{SEP}{miner_id}"

    @classmethod
    def parse(cls, key: str) -> RoundKey:
        date, network = key.split(SEP, 1)
        return cls(dt.date.fromisoformat(date), network)


def round_key(date: dt.date, network: str) -> str:
    """Key of one (date, network) round in ``batches``."""
    return RoundKey(date, network).text


def parse_round_key(key: str) -> tuple[dt.date, str]:
    parsed = RoundKey.parse(key)
    return parsed.date, parsed.network


def miner_key(date: dt.date, network: str, miner_id: str) -> str:
    """Key of one miner's facts of a round in ``stats`` and ``results``."""
    return RoundKey(date, network).miner(miner_id)


def chunk_id(kind: str, bucket: int, chunk: int) -> str:
    return f"{kind}{SEP}{bucket:05d}{SEP}{chunk:05d}"


def chunk_key(date: dt.date, network: str, miner_id: str, kind: str, bucket: int, chunk: int) -> str:
    """Key of one stored chunk: a resubmission of the same chunk replaces it."""
    return f"{miner_key(date, network, miner_id)}{SEP}{chunk_id(kind, bucket, chunk)}"


def ensemble_key(date: dt.date, network: str, version: int, part: int) -> str:
    """Key of one part of an emitted version's alert scores in ``ensembles``."""
    return f"{round_key(date, network)}{SEP}{version:06d}{SEP}{part:05d}"


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


ENSEMBLE_PART = 20_000  # alerts per stored part: ~215 kB of JSON, well under a broker's message size limit


def ids_digest(ids: Sequence[str]) -> str:
    """Which alerts a stored ensemble is aligned with (sha256 of the sorted ids, one per line)."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredEnsemble:
    """An emitted version's alert scores on the batch's sorted alert ids (NaN: no miner scored it).

    Stored in parts of ``ENSEMBLE_PART`` alerts; part 0 also carries the miners' weights.
    """

    version: int
    digest: str
    weights: dict[str, float]
    scores: npt.NDArray[np.float64]

    def to_values(self) -> list[dict[str, Any]]:
        count = max(1, -(-len(self.scores) // ENSEMBLE_PART))
        values = []
        for part in range(count):
            piece = np.ascontiguousarray(self.scores[part * ENSEMBLE_PART : (part + 1) * ENSEMBLE_PART], dtype="<f8")
            value: dict[str, Any] = {"v": self.version, "ids": self.digest, "parts": count}
            value["s"] = base64.b64encode(piece.tobytes()).decode()
            if part == 0:
                value["w"] = dict(sorted(self.weights.items()))
            values.append(value)
        return values

    @classmethod
    def from_values(cls, values: Sequence[Mapping[str, Any]]) -> StoredEnsemble | None:
        """None unless every part of one version is there."""
        if not values or len(values) != int(values[0].get("parts", -1)):
            return None
        first = values[0]
        if any(v.get("v") != first["v"] or v.get("ids") != first["ids"] for v in values):
            return None
        scores = np.concatenate([np.frombuffer(base64.b64decode(v["s"]), dtype="<f8") for v in values])
        weights = {str(k): float(w) for k, w in dict(first.get("w") or {}).items()}
        return cls(int(first["v"]), str(first["ids"]), weights, scores.astype(np.float64))


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
    ensembles ensemble_key -> alert scores of an emitted version  (the last two per round) expired after retention
    registry miner_id  -> registration of a serving miner   never expired (small)
    identities miner_id -> the public key bound on first use  never expired (small)
    """

    batches: Table = field(default_factory=dict)
    chunks: Table = field(default_factory=dict)
    stats: Table = field(default_factory=dict)
    results: Table = field(default_factory=dict)
    weights: Table = field(default_factory=dict)
    index: Table = field(default_factory=dict)
    ensembles: Table = field(default_factory=dict)
    registry: Table = field(default_factory=dict)
    identities: Table = field(default_factory=dict)

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
        ensembles=table("ensembles"),
        registry=table("registry"),
        identities=table("identities"),
    )
