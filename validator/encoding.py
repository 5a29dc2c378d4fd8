"""Column-wise Avro encoding of the ensemble records: one numpy pass per field, not one call per entity.

The bytes are those ``AvroCodec.encode`` writes (Confluent header, then Avro binary: zig-zag
varints, little-endian doubles, length-prefixed UTF-8, arrays as one block then 0). The layout
is checked against the registered schema when the encoder is built, so a schema change fails
loudly instead of writing records that no longer fit.

    encoder = EnsembleEncoder.for_record(codec, ENSEMBLE_ALERT_SCORE, "alert_id")
    payloads = encoder.encode(scores, miner_ids, entity_ids, network, date, version)   # list[bytes]
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.codec import MAGIC, AvroCodec
from streams.errors import CodecError
from validator.ensemble import EnsembleScores

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
_EPOCH = dt.date(1970, 1, 1)
_CONTRIBUTOR = [("miner_id", "string"), ("weight", "double"), ("score", "double")]


def _layout(id_field: str) -> list[tuple[str, Any]]:
    return [
        ("network", "string"),
        ("processing_date", ("int", "date")),
        (id_field, "string"),
        ("ensemble_score", "double"),
        ("confidence", "double"),
        ("miner_count", "int"),
        ("miner_agreement", "double"),
        ("score_std", "double"),
        ("rank", "int"),
        ("top_contributors", ("array", _CONTRIBUTOR)),
        ("version", "int"),
    ]


def _shape(schema: Any) -> Any:
    """A schema reduced to what decides its binary encoding (names, types, logical types)."""
    if isinstance(schema, str):
        return schema
    if isinstance(schema, dict):
        kind = schema["type"]
        if kind == "record":
            return [(f["name"], _shape(f["type"])) for f in schema["fields"]]
        if kind == "array":
            return ("array", _shape(schema["items"]))
        if "logicalType" in schema:
            return (kind, schema["logicalType"])
        return _shape(kind)
    return repr(schema)


@dataclass(frozen=True, slots=True)
class Column:
    """One field of every record: its bytes back to back, and each record's byte length."""

    data: U8
    lengths: I64

    @classmethod
    def constant(cls, value: bytes, n: int) -> Column:
        data = np.frombuffer(value * n, dtype=np.uint8) if n else np.zeros(0, dtype=np.uint8)
        return cls(data, np.full(n, len(value), dtype=np.int64))


def varints(values: npt.ArrayLike, present: npt.NDArray[np.bool_] | None = None) -> Column:
    """Zig-zag varints of int64 values (Avro int and long); absent entries take no bytes."""
    v = np.asarray(values, dtype=np.int64)
    zig = ((v << np.int64(1)) ^ (v >> np.int64(63))).astype(np.uint64)
    size = np.ones(len(zig), dtype=np.int64)
    for group in range(1, 10):
        size += zig >= np.uint64(1 << (7 * group))
    width = int(size.max()) if len(size) else 1
    shifts = np.arange(width, dtype=np.uint64)
    groups = ((zig[:, None] >> (np.uint64(7) * shifts)) & np.uint64(0x7F)).astype(np.uint8)
    slot = np.arange(width, dtype=np.int64)[None, :]
    groups = groups | np.where(slot < size[:, None] - 1, np.uint8(0x80), np.uint8(0))  # continuation bit
    keep = slot < size[:, None]
    if present is not None:
        keep &= present[:, None]
        size = np.where(present, size, 0)
    return Column(groups[keep], size)


def doubles(values: npt.ArrayLike, present: npt.NDArray[np.bool_] | None = None) -> Column:
    """Little-endian IEEE doubles; absent entries take no bytes."""
    v = np.ascontiguousarray(np.asarray(values, dtype="<f8"))
    if present is None:
        return Column(v.view(np.uint8), np.full(len(v), 8, dtype=np.int64))
    return Column(np.ascontiguousarray(v[present]).view(np.uint8), np.where(present, 8, 0).astype(np.int64))


def strings(values: Sequence[str]) -> list[Column]:
    """Avro strings: the varint byte length, then the UTF-8 bytes (two columns)."""
    encoded = list(map(str.encode, values))
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return [varints(lengths), Column(data, lengths)]


def _ramp(lengths: I64) -> tuple[I64, I64]:
    """For every byte of a column: its record, and its index inside that record's run."""
    total = int(lengths.sum())
    record = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    starts = np.cumsum(lengths) - lengths
    return record, np.arange(total, dtype=np.int64) - starts[record]


def choose(vocabulary: Sequence[str], index: I64) -> list[Column]:
    """Avro strings picked from a small vocabulary by index (-1: absent, no bytes)."""
    present = index >= 0
    words = [w.encode() for w in vocabulary]
    sizes = np.array([len(w) for w in words], dtype=np.int64)
    flat = np.frombuffer(b"".join(words), dtype=np.uint8) if words else np.zeros(0, dtype=np.uint8)
    starts = np.cumsum(sizes) - sizes
    safe = np.where(present, index, 0)
    lengths = np.where(present, sizes[safe] if len(sizes) else 0, 0).astype(np.int64)
    record, inner = _ramp(lengths)
    data = flat[starts[safe[record]] + inner] if len(record) else np.zeros(0, dtype=np.uint8)
    return [varints(lengths, present), Column(data, lengths)]


def assemble(columns: Sequence[Column], n: int) -> list[bytes]:
    """Interleave columns record by record: record i is column 0's bytes of i, then column 1's, ..."""
    if n == 0:
        return []
    lengths = np.stack([c.lengths for c in columns])  # columns x records
    sizes = lengths.sum(axis=0)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    within = np.cumsum(lengths, axis=0) - lengths  # where each column starts inside its record
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    for c, column in enumerate(columns):
        if len(column.data) == 0:
            continue
        record, inner = _ramp(column.lengths)
        out[(starts + within[c])[record] + inner] = column.data
    buffer = out.tobytes()
    return list(map(buffer.__getitem__, map(slice, starts.tolist(), ends.tolist())))


class EnsembleEncoder:
    """Encodes every entity of an ``EnsembleScores`` as one EnsembleAlertScore/EnsembleClusterScore."""

    def __init__(self, schema_id: int) -> None:
        self.header = struct.pack(">bI", MAGIC, schema_id)

    @classmethod
    def for_record(cls, codec: AvroCodec, name: str, id_field: str) -> EnsembleEncoder:
        registered = codec.registry.by_name(name)
        if _shape(registered.schema) != _layout(id_field):
            msg = f"{name}: schema id {registered.schema_id} no longer has the layout the ensemble encoder writes"
            raise CodecError(msg)
        return cls(registered.schema_id)

    def encode(
        self,
        scores: EnsembleScores,
        miner_ids: Sequence[str],
        entity_ids: Sequence[str],
        network: str,
        date: dt.date,
        version: int,
    ) -> list[bytes]:
        n = len(entity_ids)
        if len(scores.score) != n:
            msg = f"{len(scores.score)} ensemble scores for {n} entity ids"
            raise CodecError(msg)
        one = np.ones(1, dtype=np.int64)
        prefix = b"".join(
            [
                self.header,
                *(bytes(c.data) for c in strings([network])),
                bytes(varints((date - _EPOCH).days * one).data),
            ]
        )
        columns = [Column.constant(prefix, n), *strings(entity_ids)]
        columns += [doubles(scores.score), doubles(scores.confidence), varints(scores.miner_count)]
        columns += [doubles(scores.agreement), doubles(scores.std), varints(scores.rank)]
        found = scores.top_rows >= 0
        count = found.sum(axis=0)
        columns.append(varints(count, count > 0))  # an array is one block of ``count`` items, then 0
        for slot in range(scores.top_rows.shape[0]):
            columns += choose(miner_ids, scores.top_rows[slot])
            columns += [doubles(scores.top_weights[slot], found[slot]), doubles(scores.top_scores[slot], found[slot])]
        columns.append(Column.constant(bytes(varints(0 * one).data) + bytes(varints(version * one).data), n))
        return assemble(columns, n)
