"""The documented contract, the schemas the code uses and docs/batch-contract.md are one thing."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sot.generator import generate_batch
from streams import batch, contract

DOC = Path(__file__).parents[3] / "docs" / "batch-contract.md"


def test_the_document_is_rendered_from_the_code() -> None:
    hint = "regenerate: python -m streams.contract > docs/batch-contract.md"
    assert DOC.read_text() == contract.render_markdown(), hint


def test_every_schema_of_the_code_is_a_documented_file() -> None:
    files = {**batch.BATCH_FILES, **batch.LABEL_FILES, **batch.TRAP_FILES}
    assert set(files) == set(contract.SPECS)
    for name, schema in files.items():
        documented = contract.SPECS[name]
        assert schema.equals(documented.schema), name
        for column in documented.columns:
            assert column.meaning and column.example, (name, column.name)
            assert f"| `{column.name}` | `{column.type}` | {column.meaning} |" in DOC.read_text()


def test_the_json_form_lists_every_column() -> None:
    data = contract.as_json()
    assert data["schema_version"] == batch.SCHEMA_VERSION and data["network_pattern"] == batch.NETWORK_PATTERN
    assert [c["name"] for c in data["files"]["alerts.parquet"]["columns"]] == batch.ALERTS.names
    assert {m["name"] for m in data["manifest"]} >= {"batch_id", "files", "schema_version", "published_at"}


@pytest.mark.parametrize("network", ["ethereum", "torus"])
def test_generated_batches_keep_to_the_documented_ranges(network: str) -> None:
    made = generate_batch(network, dt.date(2026, 3, 4), alerts=200, addresses=1000, flows=4000, clusters=20)
    tables = {**made.tables, "alert_labels.parquet": made.alert_labels, "cluster_labels.parquet": made.cluster_labels}
    for name, table in tables.items():
        for column in contract.SPECS[name].columns:
            values = table.column(column.name)
            if not column.nullable or column.key:
                assert values.null_count == 0, (name, column.name)
            if column.values:
                assert set(pc.unique(values.drop_null()).to_pylist()) <= set(column.values), (name, column.name)
            if column.low is not None and len(values.drop_null()):
                low = pc.min(values).as_py()
                assert low >= column.low and math.isfinite(low), (name, column.name, low)
            if column.high is not None and len(values.drop_null()):
                assert pc.max(values).as_py() <= column.high, (name, column.name)
            if pa.types.is_timestamp(column.type):
                assert values.type.tz == "UTC"
