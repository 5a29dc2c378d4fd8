"""Avro codec: exact bytes for known records, every schema round-trips, bad bytes raise CodecError."""

from __future__ import annotations

import datetime as dt
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema
from fastavro.validation import validate

from streams.codec import AvroCodec
from streams.errors import CodecError
from streams.schema_registry import SCHEMA_DIR, FileSchemaRegistry

UTC = dt.UTC


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec(FileSchemaRegistry.default())


MINER_ERROR = {
    "miner_id": "m",
    "network": None,
    "processing_date": dt.date(2026, 1, 2),
    "batch_key": "k",
    "error_type": "X",
    "message": "y",
    "occurred_at": dt.datetime(2026, 1, 1, tzinfo=UTC),
}


@pytest.mark.parametrize(
    ("name", "record", "expected"),
    [
        (
            "riskstream.MinerError",
            MINER_ERROR,
            # magic 0, id 4, then: "m", null branch, date branch + 20455 days, "k", "X", "y", millis
            b"\x00\x00\x00\x00\x04\x02m\x00\x02\xce\xbf\x02\x02k\x02X\x02y\x80\xa0\xd5\xed\xeef",
        ),
        (
            "riskstream.MinerError",
            {**MINER_ERROR, "network": "eth", "processing_date": None, "message": ""},
            b"\x00\x00\x00\x00\x04\x02m\x02\x06eth\x00\x02k\x02X\x00\x80\xa0\xd5\xed\xeef",
        ),
    ],
)
def test_encode_gives_exact_confluent_bytes(
    codec: AvroCodec, name: str, record: dict[str, Any], expected: bytes
) -> None:
    assert codec.encode(name, record) == expected
    assert codec.decode(expected).record == record


def _example(field_type: object) -> object:
    """A valid value of an Avro type (enough to round-trip every schema)."""
    if isinstance(field_type, list):
        return _example(field_type[-1])
    if isinstance(field_type, dict):
        logical = field_type.get("logicalType")
        if logical == "date":
            return dt.date(2026, 3, 4)
        if logical == "timestamp-millis":
            return dt.datetime(2026, 3, 4, 5, 6, 7, 8000, tzinfo=UTC)
        kind = field_type["type"]
        if kind == "array":
            return [_example(field_type["items"]), _example(field_type["items"])]
        if kind == "map":
            return {"k": _example(field_type["values"])}
        if kind == "record":
            return {f["name"]: _example(f["type"]) for f in field_type["fields"]}
        return _example(kind)
    return {"string": "x", "int": 7, "long": 8, "double": 0.25, "float": 0.5, "boolean": True, "null": None}.get(
        str(field_type), "x"
    )


@pytest.mark.parametrize("path", sorted(SCHEMA_DIR.glob("*.avsc")), ids=lambda p: p.stem)
def test_every_schema_round_trips(codec: AvroCodec, path: Path) -> None:
    schema = json.loads(path.read_text())
    record = _example(schema)
    assert isinstance(record, dict)
    assert validate(record, parse_schema(schema))
    name = f"{schema['namespace']}.{schema['name']}"
    decoded = codec.decode(codec.encode(name, record))
    assert decoded.name == name
    assert decoded.record == record


def test_schema_file_and_record_share_a_name() -> None:
    for path in SCHEMA_DIR.glob("*.avsc"):
        name = json.loads(path.read_text())["name"]
        assert "".join(part.title() for part in path.stem.split("_")) == name


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "too short"),
        (b"", "too short"),
        (b"\x00\x00\x00", "too short"),
        (b"\x01\x00\x00\x00\x04abc", "magic byte"),
        (struct.pack(">bI", 0, 999) + b"\x02m", "unknown schema id 999"),
        (b"\x00\x00\x00\x00\x04\x02m\x00", "does not decode"),
        (b"\x00\x00\x00\x00\x04\x02m\x00\x02\xce\xbf\x02\x02k\x02X\x02y\x80\xa0\xd5\xed\xeef\x00", "trailing"),
    ],
)
def test_bad_bytes_raise_codec_error(codec: AvroCodec, data: bytes | None, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        codec.decode(data)


def test_record_that_does_not_fit_raises_codec_error(codec: AvroCodec) -> None:
    with pytest.raises(CodecError, match="does not fit"):
        codec.encode("riskstream.MinerError", {**MINER_ERROR, "miner_id": 5})
    with pytest.raises(CodecError, match="no schema named"):
        codec.encode("riskstream.Nope", {})
