"""Synthetic batches and miner submissions with known answers, for tests, benchmarks and demos.

The batch follows ``streams.batch`` (parquet files, manifest, traps, labels) and submissions
follow ``streams.submission`` (bucketed chunks, completion marker, checksum), so the validator
sees exactly what the SOT and miners publish.

    batch = make_batch(300, date(2026, 1, 2), seed=1)
    key = write_batch(store, batch)
    records = submission_records(codec, batch, "m1", honest_scores(batch, 0.8, seed=2), produced_at)
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
from streams.codec import AvroCodec
from streams.objectstore import ObjectStore, sha256_hex
from streams.submission import complete_key, score_key, split_into_chunks, submission_checksum

Floats = npt.NDArray[np.float64]


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
        {"alerts.parquet": _parquet(alerts), "clusters.parquet": _parquet(clusters)},
        snapshot_key,
        batch,
        "snapshot",
    )


def write_labels(store: ObjectStore, batch: SyntheticBatch) -> str:
    alerts = pa.table({"alert_id": batch.alert_ids, "label": batch.alert_labels}, schema=ALERT_LABELS)
    clusters = pa.table({"cluster_id": batch.cluster_ids, "label": batch.cluster_labels}, schema=CLUSTER_LABELS)
    files = {"alert_labels.parquet": _parquet(alerts), "cluster_labels.parquet": _parquet(clusters)}
    return _put_all(store, files, labels_key, batch, "labels")


def honest_scores(labels: npt.NDArray[np.int8], noise: float, *, seed: int) -> Floats:
    """A noisy but informative model: logistic of a label-separated signal plus noise."""
    rng = np.random.default_rng(seed)
    logit = np.where(labels > 0, 1.2, -1.2) + rng.normal(0.0, noise, len(labels))
    scores: Floats = 1.0 / (1.0 + np.exp(-logit))
    return scores


def random_scores(n: int, *, seed: int) -> Floats:
    return np.random.default_rng(seed).random(n)


def constant_scores(n: int, value: float = 0.5) -> Floats:
    return np.full(n, value)


def copied_scores(original: Floats, *, seed: int, noise: float = 0.002) -> Floats:
    return np.clip(original + np.random.default_rng(seed).normal(0.0, noise, len(original)), 0.0, 1.0)


def submission_records(
    codec: AvroCodec,
    batch: SyntheticBatch,
    miner_id: str,
    alert_scores: Floats,
    cluster_scores: Floats,
    produced_at: dt.datetime,
    *,
    buckets: int = 16,
    chunk_size: int = 1000,
    model_version: str = "v1",
) -> list[tuple[str, bytes]]:
    """(key, value) of every chunk and the completion marker, as a miner sends them."""
    ids = batch.alert_ids
    order = np.lexsort((np.asarray(ids), -alert_scores))
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[order] = np.arange(1, len(ids) + 1)
    common = {
        "network": batch.network,
        "processing_date": batch.date,
        "window_days": batch.window_days,
        "batch_id": batch.batch_id,
        "miner_id": miner_id,
        "model_version": model_version,
        "latency_ms": 0.0,
        "produced_at": produced_at,
    }
    out: list[tuple[str, bytes]] = []
    alert_chunks = cluster_chunks = 0
    for bucket, chunk, pos in split_into_chunks(ids, buckets, chunk_size):
        record = {
            **common,
            "bucket": bucket,
            "chunk": chunk,
            "alert_ids": [ids[p] for p in pos],
            "scores": [float(alert_scores[p]) for p in pos],
            "ranks": [int(ranks[p]) for p in pos],
        }
        out.append((score_key(batch.date, bucket), codec.encode("riskstream.AlertScoreBatch", record)))
        alert_chunks += 1
    cids = batch.cluster_ids
    for bucket, chunk, pos in split_into_chunks(cids, buckets, chunk_size):
        record = {
            **common,
            "bucket": bucket,
            "chunk": chunk,
            "cluster_ids": [cids[p] for p in pos],
            "scores": [float(cluster_scores[p]) for p in pos],
        }
        out.append((score_key(batch.date, bucket), codec.encode("riskstream.ClusterScoreBatch", record)))
        cluster_chunks += 1
    marker = {
        key: common[key]
        for key in ("network", "processing_date", "window_days", "batch_id", "miner_id", "latency_ms", "produced_at")
    }
    marker.update(
        alert_count=len(ids),
        cluster_count=len(cids),
        alert_chunks=alert_chunks,
        cluster_chunks=cluster_chunks,
        model_versions={"alert_scorer": model_version},
        checksum=submission_checksum(ids, [float(s) for s in alert_scores], cids, [float(s) for s in cluster_scores]),
    )
    out.append((complete_key(batch.date), codec.encode("riskstream.SubmissionComplete", marker)))
    return out


def adversarial_panel(batch: SyntheticBatch, *, seed: int) -> dict[str, tuple[Floats, Floats]]:
    """Three honest miners (different noise), a random, a constant and a copycat of the first."""
    n, k = len(batch.alert_ids), len(batch.cluster_ids)
    panel: dict[str, tuple[Floats, Floats]] = {}
    for i, noise in enumerate((0.9, 1.1, 1.3)):
        panel[f"honest-{i + 1}"] = (
            honest_scores(batch.alert_labels, noise, seed=seed + i),
            honest_scores(batch.cluster_labels, noise, seed=seed + 10 + i),
        )
    panel["random"] = (random_scores(n, seed=seed + 20), random_scores(k, seed=seed + 21))
    panel["constant"] = (constant_scores(n), constant_scores(k))
    original = panel["honest-1"]
    panel["copycat"] = (copied_scores(original[0], seed=seed + 30), copied_scores(original[1], seed=seed + 31))
    return panel
