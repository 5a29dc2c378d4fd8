"""What the SOT published for a date, as the validator needs it: ids, traps and labels.

manifest = read_manifest(store, key)
contents = load_batch(store, manifest)      # sorted alert and cluster ids, traps if any

Snapshots and labels are read with ``streams.batch.read_batch``/``read_labels``, the verifying
reader the miners use, so the validator rejects exactly the batches the miners reject.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from streams import batch as contract
from streams.batch import MANIFEST, Manifest, labels_key, snapshot_key, traps_key
from streams.errors import BatchRejected, ObjectStoreError
from streams.objectstore import ObjectStore
from validator.errors import BatchLoadError

Strings = npt.NDArray[np.str_]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class BatchContents:
    """Sorted, unique ids of one batch, and its traps (alert id -> expected label)."""

    alert_ids: Strings
    cluster_ids: Strings
    trap_ids: Strings
    trap_labels: Floats


@dataclass(frozen=True, slots=True)
class Labels:
    alert_ids: Strings
    alert_labels: Floats
    cluster_ids: Strings
    cluster_labels: Floats


def read_manifest(store: ObjectStore, key: str) -> Manifest:
    try:
        return contract.read_manifest(store, key)
    except BatchRejected as exc:
        msg = f"manifest {exc}"
        raise BatchLoadError(msg) from exc


def _table(store: ObjectStore, key: str, columns: list[str]) -> pa.Table:
    try:
        table = pq.read_table(io.BytesIO(store.get(key)), columns=columns)
    except ObjectStoreError as exc:
        msg = f"{key}: {exc}"
        raise BatchLoadError(msg) from exc
    except (pa.ArrowException, ValueError, OSError) as exc:
        msg = f"{key}: not a parquet file with columns {columns}: {exc}"
        raise BatchLoadError(msg) from exc
    return table


def _ids(table: pa.Table, column: str) -> Strings:
    values = [v for v in table.column(column).to_pylist() if v is not None]
    return np.unique(np.asarray(values, dtype=str)) if values else np.zeros(0, dtype=str)


def _pairs(table: pa.Table, id_column: str, value_column: str) -> tuple[Strings, Floats]:
    ids = np.asarray(table.column(id_column).to_pylist(), dtype=str)
    values = np.asarray(table.column(value_column).to_pylist(), dtype=np.float64)
    order = np.argsort(ids, kind="mergesort")
    return ids[order], values[order]


def _verified(manifest: Manifest, read: contract.Batch | contract.Labels) -> None:
    if read.manifest.batch_id != manifest.batch_id:
        msg = f"{read.key}: now holds batch {read.manifest.batch_id}, not {manifest.batch_id}"
        raise BatchLoadError(msg)


def _unique_and_present(table: pa.Table, column: str, manifest: Manifest) -> None:
    """A batch with no alerts, or with an id twice, is the data owner's error: rejected, nobody judged."""
    values = [v for v in table.column(column).to_pylist() if v is not None]
    if not values:
        msg = f"batch {manifest.batch_id}: no {column} values (an empty batch)"
        raise BatchLoadError(msg)
    distinct = len(set(values))
    if distinct != len(values):
        msg = f"batch {manifest.batch_id}: {len(values) - distinct} duplicate {column} values"
        raise BatchLoadError(msg)


def load_batch(store: ObjectStore, manifest: Manifest, traps_store: ObjectStore | None = None) -> BatchContents:
    net, date, window = manifest.network, manifest.processing_date, manifest.window_days
    try:
        batch = contract.read_batch(store, snapshot_key(net, date, window, MANIFEST))
    except BatchRejected as exc:
        raise BatchLoadError(str(exc)) from exc
    _verified(manifest, batch)
    alerts, cluster_ids = batch.alerts, _ids(batch.clusters, "cluster_id")
    _unique_and_present(alerts, "alert_id", manifest)
    trap_key = traps_key(net, date, window, "traps.parquet")
    traps_store = traps_store or store
    if traps_store.exists(trap_key):
        trap_ids, trap_labels = _pairs(
            _table(traps_store, trap_key, ["alert_id", "expected_label"]), "alert_id", "expected_label"
        )
    else:
        trap_ids, trap_labels = np.zeros(0, dtype=str), np.zeros(0, dtype=np.float64)
    return BatchContents(_ids(alerts, "alert_id"), cluster_ids, trap_ids, trap_labels)


def batch_manifest_key(network: str, date: dt.date, window_days: int) -> str:
    return snapshot_key(network, date, window_days, MANIFEST)


def load_labels(store: ObjectStore, manifest: Manifest) -> Labels:
    net, date, window = manifest.network, manifest.processing_date, manifest.window_days
    try:
        labels = contract.read_labels(store, labels_key(net, date, window, MANIFEST))
    except BatchRejected as exc:
        raise BatchLoadError(str(exc)) from exc
    _verified(manifest, labels)
    snapshot = read_manifest(store, snapshot_key(net, date, window, MANIFEST))
    if labels.manifest.batch_id != snapshot.batch_id:  # labels name the batch they label
        msg = f"{labels.key}: labels of batch {labels.manifest.batch_id}, the published batch is {snapshot.batch_id}"
        raise BatchLoadError(msg)
    alert_ids, alert_labels = _pairs(labels.alerts, "alert_id", "label")
    cluster_ids, cluster_labels = _pairs(labels.clusters, "cluster_id", "label")
    return Labels(alert_ids, alert_labels, cluster_ids, cluster_labels)
