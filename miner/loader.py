"""Download one published batch (or its labels) and check it against its manifest and the contract.

batch = load_batch(store, "snapshots/ethereum/2026-01-02/7/manifest.json")
batch.alerts.num_rows
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from miner.errors import BatchSchemaError, ChecksumError, MissingFileError
from miner.flows import FlowFile
from streams.batch import BATCH_FILES, LABEL_FILES, MANIFEST, Manifest, labels_key
from streams.errors import EventError, ObjectStoreError
from streams.objectstore import ObjectStore, sha256_hex


@dataclass(frozen=True, slots=True)
class Batch:
    """The verified tables of one snapshot; columns are cast to the contract's types."""

    manifest: Manifest
    key: str  # object key of the manifest
    alerts: pa.Table
    features: pa.Table
    clusters: pa.Table
    money_flows: pa.Table | FlowFile  # a verified file read in slices (or a table, for small in-memory batches)
    address_labels: pa.Table


@dataclass(frozen=True, slots=True)
class Labels:
    """Published ground truth of one date."""

    alerts: pa.Table
    clusters: pa.Table


def read_manifest(store: ObjectStore, key: str) -> Manifest:
    try:
        return Manifest.from_json(store.get(key))
    except ObjectStoreError as exc:
        msg = f"manifest {key}: {exc}"
        raise MissingFileError(msg) from exc
    except EventError as exc:
        msg = f"manifest {key}: {exc}"
        raise BatchSchemaError(msg) from exc


def _verified_bytes(store: ObjectStore, folder: str, manifest: Manifest, name: str) -> bytes:
    entry = manifest.files.get(name)
    if entry is None:
        msg = f"{folder}{name}: not listed in the manifest"
        raise MissingFileError(msg)
    try:
        data = store.get(folder + name)
    except ObjectStoreError as exc:
        msg = f"{folder}{name}: listed in the manifest but not in the store: {exc}"
        raise MissingFileError(msg) from exc
    digest = sha256_hex(data)
    if digest != entry.sha256:
        msg = f"{folder}{name}: sha256 {digest[:12]}... does not match the manifest's {entry.sha256[:12]}..."
        raise ChecksumError(msg)
    return data


def _check_rows(rows: int, manifest: Manifest, what: str, name: str) -> None:
    if rows != manifest.files[name].rows:
        msg = f"{what}: {rows} rows, the manifest says {manifest.files[name].rows}"
        raise ChecksumError(msg)


def _read_verified(store: ObjectStore, folder: str, manifest: Manifest, name: str, schema: pa.Schema) -> pa.Table:
    data = _verified_bytes(store, folder, manifest, name)
    try:
        table = pq.read_table(pa.BufferReader(data))  # zero-copy reads of the downloaded bytes
    except (pa.ArrowException, OSError) as exc:
        msg = f"{folder}{name}: not readable parquet: {exc}"
        raise BatchSchemaError(msg) from exc
    _check_rows(table.num_rows, manifest, folder + name, name)
    return conform(table, schema, f"{folder}{name}")


def _flows_verified(store: ObjectStore, folder: str, manifest: Manifest) -> FlowFile:
    """The flows file, checked like the others but kept as parquet: features read it in slices."""
    name = "money_flows.parquet"
    flows = FlowFile(_verified_bytes(store, folder, manifest, name), folder + name)
    _check_rows(flows.num_rows, manifest, folder + name, name)
    return flows


def conform(table: pa.Table, schema: pa.Schema, what: str) -> pa.Table:
    """The contract's columns in the contract's order and types; extra columns are dropped."""
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        msg = f"{what}: missing column(s) {', '.join(missing)}"
        raise BatchSchemaError(msg)
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowException, ValueError) as exc:
        msg = f"{what}: columns do not have the contract's types: {exc}"
        raise BatchSchemaError(msg) from exc


def load_batch(store: ObjectStore, manifest_key: str) -> Batch:
    """Read the manifest, then every batch file, verifying sha256, row counts and columns."""
    manifest = read_manifest(store, manifest_key)
    if manifest.kind != "snapshot":
        msg = f"{manifest_key}: a {manifest.kind} manifest, not a snapshot"
        raise BatchSchemaError(msg)
    folder = manifest_key.removesuffix(MANIFEST)
    tables = {
        name: _read_verified(store, folder, manifest, name, schema)
        for name, schema in BATCH_FILES.items()
        if name != "money_flows.parquet"
    }
    return Batch(
        manifest=manifest,
        key=manifest_key,
        alerts=tables["alerts.parquet"],
        features=tables["features.parquet"],
        clusters=tables["clusters.parquet"],
        money_flows=_flows_verified(store, folder, manifest),
        address_labels=tables["address_labels.parquet"],
    )


def load_labels(store: ObjectStore, manifest: Manifest) -> Labels | None:
    """The ground truth published for a snapshot's date, or None while it is not published yet."""
    folder = labels_key(manifest.network, manifest.processing_date, manifest.window_days)
    if not store.exists(folder + MANIFEST):
        return None
    labels = read_manifest(store, folder + MANIFEST)
    tables = {name: _read_verified(store, folder, labels, name, schema) for name, schema in LABEL_FILES.items()}
    return Labels(alerts=tables["alert_labels.parquet"], clusters=tables["cluster_labels.parquet"])
