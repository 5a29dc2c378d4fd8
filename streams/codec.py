"""Avro records in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, body.

    codec = AvroCodec(FileSchemaRegistry.default())
    data = codec.encode(MINER_ERROR, record)   # the record names are in streams.records
    decoded = codec.decode(data)   # Decoded(name=MINER_ERROR, record={...})

Any bytes that are not such a record raise ``CodecError`` (never a fastavro exception).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from streams.errors import CodecError, SchemaRegistryError
from streams.schema_registry import SchemaRegistry

MAGIC = 0
_HEADER = struct.Struct(">bI")


@dataclass(frozen=True, slots=True)
class Decoded:
    name: str  # full record name of the writer's schema
    schema_id: int
    record: dict[str, Any]


class AvroCodec:
    """Encode and decode Confluent-framed Avro records against a schema registry."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry

    def encode(self, name: str, record: dict[str, Any]) -> bytes:
        try:
            schema = self.registry.by_name(name)
        except SchemaRegistryError as exc:
            raise CodecError(str(exc)) from exc
        out = io.BytesIO()
        out.write(_HEADER.pack(MAGIC, schema.schema_id))
        try:
            schemaless_writer(out, schema.parsed, record)
        except Exception as exc:  # fastavro raises ValueError/TypeError/KeyError... for bad records
            msg = f"{name}: record does not fit the schema: {exc}"
            raise CodecError(msg) from exc
        return out.getvalue()

    def decode(self, data: bytes | None) -> Decoded:
        if data is None or len(data) < _HEADER.size:
            msg = f"{0 if data is None else len(data)} bytes: too short for the Confluent header"
            raise CodecError(msg)
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            msg = f"magic byte {magic} is not {MAGIC}: not a Confluent-framed Avro record"
            raise CodecError(msg)
        try:
            schema = self.registry.by_id(schema_id)
        except SchemaRegistryError as exc:
            raise CodecError(str(exc)) from exc
        body = io.BytesIO(data)
        body.seek(_HEADER.size)
        try:
            record = schemaless_reader(body, schema.parsed, None)
        except Exception as exc:  # truncated or corrupt bodies surface as many exception types
            msg = f"{schema.name} (id {schema_id}): body does not decode: {type(exc).__name__}: {exc}"
            raise CodecError(msg) from exc
        if body.tell() != len(data):
            msg = f"{schema.name} (id {schema_id}): {len(data) - body.tell()} trailing bytes after the record"
            raise CodecError(msg)
        if not isinstance(record, dict):
            msg = f"{schema.name} (id {schema_id}): decoded to {type(record).__name__}, not a record"
            raise CodecError(msg)
        return Decoded(schema.name, schema_id, record)
