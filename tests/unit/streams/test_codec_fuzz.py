"""Fuzz the Avro codec: random, truncated and mutated bytes, wrong schema ids -> CodecError only."""

from __future__ import annotations

import datetime as dt
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.codec import AvroCodec, Decoded
from streams.errors import CodecError
from streams.schema_registry import FileSchemaRegistry

CODEC = AvroCodec(FileSchemaRegistry.default())
CHUNK = CODEC.encode(
    "riskstream.AlertScoreBatch",
    {
        "network": "ethereum",
        "processing_date": dt.date(2026, 1, 2),
        "window_days": 7,
        "batch_id": "b1",
        "miner_id": "miner-a",
        "model_version": "1.0.0",
        "bucket": 3,
        "chunk": 0,
        "alert_ids": [f"a{i}" for i in range(20)],
        "scores": [i / 20 for i in range(20)],
        "ranks": list(range(1, 21)),
        "latency_ms": 12.5,
        "produced_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    },
)


def _decode_or_codec_error(data: bytes) -> Decoded | None:
    try:
        return CODEC.decode(data)
    except CodecError:
        return None


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_never_raise_anything_but_codec_error(data: bytes) -> None:
    _decode_or_codec_error(data)


@settings(max_examples=300)
@given(st.integers(min_value=0, max_value=len(CHUNK) - 1))
def test_every_truncation_is_a_codec_error(cut: int) -> None:
    assert _decode_or_codec_error(CHUNK[:cut]) is None


@settings(max_examples=400)
@given(st.integers(min_value=5, max_value=len(CHUNK) - 1), st.integers(min_value=0, max_value=255))
def test_mutated_bodies_decode_to_a_record_or_raise_codec_error(position: int, byte: int) -> None:
    mutated = CHUNK[:position] + bytes([byte]) + CHUNK[position + 1 :]
    decoded = _decode_or_codec_error(mutated)
    assert decoded is None or isinstance(decoded.record, dict)


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_any_schema_id_is_known_or_a_codec_error(schema_id: int) -> None:
    data = struct.pack(">bI", 0, schema_id) + CHUNK[5:]
    decoded = _decode_or_codec_error(data)
    known = {s.schema_id for s in FileSchemaRegistry.default().all()}
    assert decoded is None or schema_id in known
