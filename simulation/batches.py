"""Synthetic batches with known labels and traps, written in the ``streams.batch`` contract.

The files, manifest, traps and labels are exactly what the SOT publishes, so a validator or a
miner reading them sees a real batch whose answers the test knows.

    batch = make_batch(300, date(2026, 1, 2), seed=1)
    key = write_batch(store, batch)
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from streams.batch import (
    ALERT_LABELS,
    ALERTS,
    BATCH_FILES,
    CLUSTER_LABELS,
    CLUSTERS,
    MANIFEST,
    TRAPS,
    FileEntry,
    Manifest,
    labels_key,
    snapshot_key,
    traps_key,
)
from streams.objectstore import ObjectStore, sha256_hex


@dataclass(frozen=True, slots=True)
class SyntheticBatch:
    network: str
    date: dt.date
    window_days: int
    batch_id: str
    published_at: dt.datetime
    alert_ids: list[str]
    alert_labels: npt.NDArray[np.int8]
    cluster_ids: list[str]
    cluster_labels: npt.NDArray[np.int8]
    cluster_of_alert: list[str | None]
    trap_ids: list[str]
    trap_labels: npt.NDArray[np.int8]


def make_batch(
    n_alerts: int,
    date: dt.date,
    *,
    seed: int,
    network: str = "ethereum",
    window_days: int = 7,
    n_clusters: int | None = None,
    positive_rate: float = 0.2,
    n_traps: int = 20,
    published_at: dt.datetime | None = None,
) -> SyntheticBatch:
    rng = np.random.default_rng(seed)
    alert_ids = [f"a{date:%Y%m%d}-{i:06d}" for i in range(n_alerts)]
    labels = (rng.random(n_alerts) < positive_rate).astype(np.int8)
    n_clusters = max(1, n_alerts // 10) if n_clusters is None else n_clusters
    cluster_ids = [f"c{date:%Y%m%d}-{i:05d}" for i in range(n_clusters)]
    which = rng.integers(0, n_clusters, n_alerts)
    cluster_labels = np.zeros(n_clusters, dtype=np.int8)
    for alert, cluster in enumerate(which):
        cluster_labels[cluster] = max(cluster_labels[cluster], labels[alert])
    traps = sorted(rng.choice(n_alerts, size=min(n_traps, n_alerts), replace=False).tolist())
    return SyntheticBatch(
        network=network,
        date=date,
        window_days=window_days,
        batch_id=f"{network}-{date.isoformat()}-{seed}",
        published_at=published_at or dt.datetime.combine(date, dt.time(6, 0), tzinfo=dt.UTC),
        alert_ids=alert_ids,
        alert_labels=labels,
        cluster_ids=cluster_ids,
        cluster_labels=cluster_labels,
        cluster_of_alert=[cluster_ids[c] for c in which],
        trap_ids=[alert_ids[t] for t in traps],
        trap_labels=labels[traps],
    )


_IDS_ONLY = ("alerts.parquet", "clusters.parquet")


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def _put_all(store: ObjectStore, files: dict[str, bytes], key_of: object, batch: SyntheticBatch, kind: str) -> str:
    assert callable(key_of)
    entries = {}
    for name, data in files.items():
        store.put(key_of(batch.network, batch.date, batch.window_days, name), data)
        entries[name] = FileEntry(pq.read_metadata(io.BytesIO(data)).num_rows, sha256_hex(data), len(data))
    manifest = Manifest(batch.network, batch.date, batch.window_days, batch.batch_id, batch.published_at, entries, kind)
    key: str = key_of(batch.network, batch.date, batch.window_days, MANIFEST)
    store.put(key, manifest.to_json())
    return key


def write_batch(store: ObjectStore, batch: SyntheticBatch) -> str:
    """Write alerts, clusters and traps of the batch; return the manifest key."""
    n = len(batch.alert_ids)
    alerts = pa.table(
        {
            "alert_id": batch.alert_ids,
            "processing_date": [batch.date] * n,
            "window_days": [batch.window_days] * n,
            "network": [batch.network] * n,
            "address": [f"0x{i:040x}" for i in range(n)],
            "typology_type": ["layering"] * n,
            "pattern_id": ["p1"] * n,
            "severity": ["medium"] * n,
            "suspected_address_type": ["unknown"] * n,
            "alert_confidence_score": [0.5] * n,
            "volume_usd": [1000.0] * n,
            "description": ["synthetic"] * n,
            "risk_indicators": [[] for _ in range(n)],
            "cluster_id": batch.cluster_of_alert,
        },
        schema=ALERTS,
    )
    members: dict[str, list[str]] = {c: [] for c in batch.cluster_ids}
    for alert, cluster in zip(batch.alert_ids, batch.cluster_of_alert, strict=True):
        if cluster is not None:
            members[cluster].append(alert)
    k = len(batch.cluster_ids)
    clusters = pa.table(
        {
            "cluster_id": batch.cluster_ids,
            "cluster_type": ["flow"] * k,
            "primary_address": ["0x0"] * k,
            "related_alert_ids": [members[c] for c in batch.cluster_ids],
            "addresses_involved": [[] for _ in range(k)],
            "total_alerts": [len(members[c]) for c in batch.cluster_ids],
            "total_volume_usd": [0.0] * k,
            "severity_max": ["medium"] * k,
            "confidence_avg": [0.5] * k,
        },
        schema=CLUSTERS,
    )
    traps = pa.table({"alert_id": batch.trap_ids, "expected_label": batch.trap_labels}, schema=TRAPS)
    store.put(traps_key(batch.network, batch.date, batch.window_days, "traps.parquet"), _parquet(traps))
    return _put_all(
        store,
        {
            "alerts.parquet": _parquet(alerts),
            "clusters.parquet": _parquet(clusters),
            # the validator reads only ids, but a batch is verified whole: the other files, empty
            **{name: _parquet(schema.empty_table()) for name, schema in BATCH_FILES.items() if name not in _IDS_ONLY},
        },
        snapshot_key,
        batch,
        "snapshot",
    )


def write_labels(store: ObjectStore, batch: SyntheticBatch) -> str:
    alerts = pa.table({"alert_id": batch.alert_ids, "label": batch.alert_labels}, schema=ALERT_LABELS)
    clusters = pa.table({"cluster_id": batch.cluster_ids, "label": batch.cluster_labels}, schema=CLUSTER_LABELS)
    files = {"alert_labels.parquet": _parquet(alerts), "cluster_labels.parquet": _parquet(clusters)}
    return _put_all(store, files, labels_key, batch, "labels")
