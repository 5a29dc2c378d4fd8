"""The column-wise ensemble encoder writes exactly the bytes of ``AvroCodec.encode``, record by record."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from simulation.oracle import ensemble_records
from streams.codec import AvroCodec
from streams.errors import CodecError
from streams.schema_registry import FileSchemaRegistry, RegisteredSchema
from validator.encoding import EnsembleEncoder, assemble, doubles, strings, varints
from validator.ensemble import ensemble_scores

CODEC = AvroCodec(FileSchemaRegistry.default())
ids_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    matrix=arrays(np.float64, st.tuples(st.integers(0, 5), st.integers(0, 40)), elements=st.floats(0.0, 1.0)),
    holes=st.integers(0, 2**31),
    top_k=st.integers(1, 4),
    version=st.integers(1, 2**31 - 1),
    days=st.integers(-30_000, 30_000),
    names=st.lists(ids_text, min_size=5, max_size=5),
    network=ids_text,
)
def test_bytes_equal_the_record_codec(
    matrix: Any, holes: int, top_k: int, version: int, days: int, names: list[str], network: str
) -> None:
    rng = np.random.default_rng(holes)
    m, n = matrix.shape
    matrix = np.where(rng.random((m, n)) < 0.3, np.nan, matrix)
    weights = rng.random(m) * (rng.random(m) < 0.8)
    ids = [f"{names[i % 5]}-{i}" for i in range(n)]
    date = dt.date(1970, 1, 1) + dt.timedelta(days=days)
    scores = ensemble_scores(matrix, weights, ids, top_k=top_k)
    miners = [f"{names[i]}m{i}" for i in range(m)]
    for name, id_field in (
        ("riskstream.EnsembleAlertScore", "alert_id"),
        ("riskstream.EnsembleClusterScore", "cluster_id"),
    ):
        fast = EnsembleEncoder.for_record(CODEC, name, id_field).encode(scores, miners, ids, network, date, version)
        oracle = ensemble_records(scores, miners, ids, id_field, network, date, version)
        expected = [CODEC.encode(name, record) for _, record in oracle]
        assert fast == expected


@pytest.mark.parametrize("value", [0, 1, -1, 63, -64, 64, 2**31 - 1, -(2**31), 2**62, -(2**63)])
def test_varints_are_avro_zigzag(value: int) -> None:
    from fastavro.io.binary_encoder import BinaryEncoder  # the reference implementation, pure Python

    out = io.BytesIO()
    encoder = BinaryEncoder(out)  # type: ignore[no-untyped-call]  # fastavro's pure-Python encoder is untyped
    encoder.write_long(value)  # type: ignore[no-untyped-call]
    encoder.flush()  # type: ignore[no-untyped-call]
    assert bytes(varints(np.array([value])).data) == out.getvalue()


def test_assemble_interleaves_columns_and_skips_absent_values() -> None:
    present = np.array([True, False, True])
    columns = [*strings(["a", "bé", ""]), doubles([1.0, 2.0, 3.0], present), varints([5, 6, 7], ~present)]
    records = assemble(columns, 3)
    assert records[0] == b"\x02a" + np.float64(1.0).tobytes()
    assert records[1] == b"\x06b\xc3\xa9" + b"\x0c"
    assert records[2] == b"\x00" + np.float64(3.0).tobytes()
    assert assemble(columns, 0) == []


def test_a_schema_that_changed_layout_is_refused() -> None:
    class Changed:
        def by_name(self, name: str) -> RegisteredSchema:
            found = CODEC.registry.by_name(name)
            schema = {**found.schema, "fields": [*found.schema["fields"], {"name": "extra", "type": "long"}]}
            return RegisteredSchema(found.schema_id, found.name, schema, found.parsed)

    with pytest.raises(CodecError, match="layout"):
        EnsembleEncoder.for_record(AvroCodec(Changed()), "riskstream.EnsembleAlertScore", "alert_id")  # type: ignore[arg-type]


def test_ids_and_scores_must_match() -> None:
    scores = ensemble_scores(np.ones((1, 3)), np.ones(1), ["a", "b", "c"], top_k=1)
    encoder = EnsembleEncoder.for_record(CODEC, "riskstream.EnsembleAlertScore", "alert_id")
    with pytest.raises(CodecError, match="3 ensemble scores for 2 entity ids"):
        encoder.encode(scores, ["m"], ["a", "b"], "ethereum", dt.date(2026, 1, 2), 1)
