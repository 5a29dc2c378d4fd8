"""The one verifying batch reader: what it accepts, what it rejects and how it says why."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streams.batch import (
    BATCH_FILES,
    LABEL_FILES,
    MANIFEST,
    FileEntry,
    Manifest,
    labels_for,
    labels_key,
    read_batch,
    snapshot_key,
)
from streams.errors import BatchRejected, BatchSchemaError, ChecksumError, MissingFileError
from streams.objectstore import FileObjectStore, sha256_hex

DATE = dt.date(2026, 2, 3)
KEY = snapshot_key("torus", DATE, 7, MANIFEST)


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def _alerts(**override: pa.Array) -> pa.Table:
    schema = BATCH_FILES["alerts.parquet"]
    columns = {f.name: pa.nulls(2, f.type) for f in schema}
    columns["alert_id"] = pa.array(["a1", "a2"])
    columns.update(override)
    return pa.table(columns)


def _publish(store: FileObjectStore, tables: dict[str, pa.Table], *, kind: str = "snapshot", key: str = KEY) -> None:
    folder = key.removesuffix(MANIFEST)
    entries = {}
    for name, table in tables.items():
        data = _parquet(table)
        store.put(folder + name, data)
        entries[name] = FileEntry(table.num_rows, sha256_hex(data), len(data))
    at = dt.datetime(2026, 2, 4, tzinfo=dt.UTC)
    store.put(key, Manifest("torus", DATE, 7, "b1", at, entries, kind).to_json())


def _batch(alerts: pa.Table | None = None) -> dict[str, pa.Table]:
    tables = {name: schema.empty_table() for name, schema in BATCH_FILES.items()}
    tables["alerts.parquet"] = _alerts() if alerts is None else alerts
    return tables


@pytest.fixture
def store(tmp_path: Path) -> FileObjectStore:
    return FileObjectStore(tmp_path)


def test_a_complete_batch_is_read_in_the_contracts_types(store: FileObjectStore) -> None:
    wide = _alerts(window_days=pa.array([7, 7], pa.int64()), extra=pa.array([1, 2]))  # int64: a lossless cast
    _publish(store, _batch(wide))
    batch = read_batch(store, KEY)
    assert batch.alerts.schema == BATCH_FILES["alerts.parquet"]
    assert batch.alerts.column("alert_id").to_pylist() == ["a1", "a2"]
    assert batch.manifest.batch_id == "b1" and batch.key == KEY
    assert labels_for(store, batch.manifest) is None


def _rejection(store: FileObjectStore) -> BatchRejected:
    with pytest.raises(BatchRejected) as caught:
        read_batch(store, KEY)
    return caught.value


def test_a_file_changed_after_publication_is_a_checksum_error(store: FileObjectStore) -> None:
    _publish(store, _batch())
    store.put(KEY.replace(MANIFEST, "alerts.parquet"), _parquet(_alerts(alert_id=pa.array(["x", "y"]))))
    error = _rejection(store)
    assert isinstance(error, ChecksumError) and error.key.endswith("alerts.parquet") and "sha256" in error.reason


@pytest.mark.parametrize(
    ("alerts", "error_type", "needle"),
    [
        (_alerts().drop_columns(["address"]), BatchSchemaError, "missing column(s) address"),
        (_alerts(window_days=pa.array([7, 2**40])), BatchSchemaError, "column window_days: int64 does not cast"),
        (_alerts(volume_usd=pa.array(["1", "x"])), BatchSchemaError, "column volume_usd"),
    ],
)
def test_columns_that_do_not_fit_the_contract_are_rejected(
    store: FileObjectStore, alerts: pa.Table, error_type: type[BatchRejected], needle: str
) -> None:
    _publish(store, _batch(alerts))
    error = _rejection(store)
    assert isinstance(error, error_type) and needle in error.reason and error.key.endswith("alerts.parquet")


def test_naive_timestamps_are_refused(store: FileObjectStore) -> None:
    tables = _batch()
    flows = BATCH_FILES["money_flows.parquet"]
    tables["money_flows.parquet"] = flows.empty_table().cast(flows.set(4, pa.field("first_seen", pa.timestamp("ms"))))
    _publish(store, tables)
    error = _rejection(store)
    assert isinstance(error, BatchSchemaError) and "first_seen: timestamp[ms] has no time zone" in error.reason


def test_missing_files_and_manifests(store: FileObjectStore) -> None:
    assert isinstance(_rejection(store), MissingFileError)  # no manifest at all
    tables = _batch()
    del tables["features.parquet"]
    _publish(store, tables)
    error = _rejection(store)
    assert isinstance(error, MissingFileError) and "not listed in the manifest" in error.reason
    store.put(KEY, b"{not json")
    assert isinstance(_rejection(store), BatchSchemaError)


def test_a_labels_manifest_is_not_a_batch_and_labels_are_verified(store: FileObjectStore) -> None:
    _publish(store, _batch())
    lkey = labels_key("torus", DATE, 7, MANIFEST)
    _publish(store, {n: s.empty_table() for n, s in LABEL_FILES.items()}, kind="labels", key=lkey)
    with pytest.raises(BatchSchemaError, match="a labels manifest, not a snapshot manifest"):
        read_batch(store, lkey)
    labels = labels_for(store, read_batch(store, KEY).manifest)
    assert labels is not None and labels.alerts.num_rows == 0
    store.put(lkey.replace(MANIFEST, "alert_labels.parquet"), b"changed")
    with pytest.raises(ChecksumError):
        labels_for(store, read_batch(store, KEY).manifest)
