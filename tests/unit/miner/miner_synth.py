"""Small synthetic batches in the SOT contract, with a planted label, for the miner's tests.

The label depends on address behaviour (mixer-like, structuring, anomaly, flows to risky
counterparties); ``alert_confidence_score`` only weakly follows it, so a trained model can beat it.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streams.batch import (
    ALERT_LABELS,
    ALERTS,
    BATCH_FILES,
    CLUSTER_LABELS,
    LABEL_FILES,
    MANIFEST,
    FileEntry,
    Manifest,
    labels_key,
    snapshot_key,
)
from streams.objectstore import FileObjectStore, ObjectStore, sha256_hex

NETWORK = "ethereum"
WINDOW = 7


@dataclass
class SynthBatch:
    date: dt.date
    tables: dict[str, pa.Table]
    alert_labels: pa.Table
    cluster_labels: pa.Table


def make_batch(date: dt.date, alerts: int = 300, flows: int = 3000, seed: int = 0) -> SynthBatch:
    rng = np.random.default_rng([seed, date.toordinal()])
    n_addr = alerts * 2
    addrs = np.array([f"0x{date:%m%d}{i:06d}" for i in range(n_addr)])
    mixer = rng.random(n_addr) < 0.08
    exchange = rng.random(n_addr) < 0.1
    structuring = rng.beta(2, 5, n_addr)
    behavioural = rng.beta(2, 5, n_addr)
    risky_cp = np.zeros(n_addr)
    # flows: bad actors send more to mixers
    src = rng.integers(0, n_addr, flows)
    mixer_idx = np.flatnonzero(mixer)
    to_mixer = rng.random(flows) < 0.1 + 0.4 * structuring[src]
    dst = np.where(to_mixer, rng.choice(mixer_idx, flows), rng.integers(0, n_addr, flows))
    amount = rng.lognormal(8, 1.5, flows)
    np.add.at(risky_cp, src, to_mixer * amount)
    latent = 1.6 * mixer + 2.5 * structuring + 2.0 * behavioural + 0.6 * np.log1p(risky_cp) / 10
    latent = latent + rng.normal(0, 0.35, n_addr)
    bad = latent > np.quantile(latent, 0.8)

    alert_addr = rng.choice(n_addr, alerts, replace=False)
    ids = np.array([f"a-{date:%Y%m%d}-{i:05d}" for i in range(alerts)])
    a_label = bad[alert_addr].astype(np.int8)
    confidence = 1 / (1 + np.exp(-(0.35 * latent[alert_addr] + rng.normal(0, 1.2, alerts))))
    n_clusters = max(alerts // 20, 1)
    cluster_of = rng.integers(-n_clusters, n_clusters, alerts)  # negative: no cluster
    named = np.char.add(f"c-{date:%Y%m%d}-", cluster_of.astype(str)).astype(object)
    cluster_ids = np.where(cluster_of >= 0, named, np.array(None, dtype=object))
    day0 = dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC)
    alerts_t = pa.table(
        {
            "alert_id": ids,
            "processing_date": [date] * alerts,
            "window_days": [WINDOW] * alerts,
            "network": [NETWORK] * alerts,
            "address": addrs[alert_addr],
            "typology_type": rng.choice(["peel_chain", "layering", "fan_out", "mixer_hop"], alerts),
            "pattern_id": [f"p{i % 7}" for i in range(alerts)],
            "severity": rng.choice(["low", "medium", "high", "critical"], alerts),
            "suspected_address_type": rng.choice(["eoa", "contract", "exchange"], alerts),
            "alert_confidence_score": confidence,
            "volume_usd": rng.lognormal(9, 1.2, alerts),
            "description": ["synthetic"] * alerts,
            "risk_indicators": [["x"] * int(k) for k in rng.integers(0, 4, alerts)],
            "cluster_id": cluster_ids.tolist(),
        },
        schema=ALERTS,
    )
    features = {
        "address": addrs,
        "degree_in": rng.integers(0, 50, n_addr).astype(np.int32),
        "degree_out": rng.integers(0, 50, n_addr).astype(np.int32),
        "total_in_usd": rng.lognormal(9, 2, n_addr),
        "total_out_usd": rng.lognormal(9, 2, n_addr),
        "tx_in_count": rng.integers(0, 500, n_addr).astype(np.int32),
        "tx_out_count": rng.integers(0, 500, n_addr).astype(np.int32),
        "avg_tx_in_usd": rng.lognormal(6, 1, n_addr),
        "avg_tx_out_usd": rng.lognormal(6, 1, n_addr),
        "max_tx_usd": rng.lognormal(8, 1, n_addr),
        "activity_days": rng.integers(1, 300, n_addr).astype(np.int32),
        "burst_factor": rng.random(n_addr),
        "reciprocity_ratio": rng.random(n_addr),
        "velocity_score": rng.random(n_addr),
        "structuring_score": structuring,
        "pagerank": rng.random(n_addr) / 1000,
        "betweenness": rng.random(n_addr) / 100,
        "clustering_coefficient": rng.random(n_addr),
        "khop1_count": rng.integers(0, 10, n_addr).astype(np.int32),
        "khop2_count": rng.integers(0, 100, n_addr).astype(np.int32),
        "khop3_count": rng.integers(0, 1000, n_addr).astype(np.int32),
        "behavioral_anomaly_score": behavioural,
        "graph_anomaly_score": rng.random(n_addr),
        "global_anomaly_score": np.clip(0.5 * behavioural + 0.5 * rng.random(n_addr), 0, 1),
        "is_exchange_like": exchange,
        "is_mixer_like": mixer,
        "first_seen": [day0 - dt.timedelta(days=int(d)) for d in rng.integers(1, 400, n_addr)],
        "last_seen": [day0 - dt.timedelta(days=int(d)) for d in rng.integers(0, 3, n_addr)],
    }
    features_t = pa.table(features, schema=BATCH_FILES["features.parquet"])
    flows_t = pa.table(
        {
            "from_address": addrs[src],
            "to_address": addrs[dst],
            "tx_count": rng.integers(1, 20, flows).astype(np.int32),
            "amount_usd_sum": amount,
            "first_seen": [day0 - dt.timedelta(days=3)] * flows,
            "last_seen": [day0] * flows,
            "active_days": rng.integers(1, 7, flows).astype(np.int32),
            "reciprocity_ratio": rng.random(flows),
            "is_bidirectional": rng.random(flows) < 0.2,
        },
        schema=BATCH_FILES["money_flows.parquet"],
    )
    c_rows = []
    c_labels = []
    for c in range(n_clusters):
        cid = f"c-{date:%Y%m%d}-{c}"
        members = np.flatnonzero(cluster_of == c)
        if members.size == 0:
            continue
        c_rows.append(
            {
                "cluster_id": cid,
                "cluster_type": "same_entity",
                "primary_address": str(addrs[alert_addr[members[0]]]),
                "related_alert_ids": ids[members].tolist(),
                "addresses_involved": addrs[alert_addr[members]].tolist(),
                "total_alerts": int(members.size),
                "total_volume_usd": float(alerts_t["volume_usd"].to_numpy()[members].sum()),
                "severity_max": "high",
                "confidence_avg": float(confidence[members].mean()),
            }
        )
        c_labels.append({"cluster_id": cid, "label": int(a_label[members].max())})
    clusters_t = pa.Table.from_pylist(c_rows, schema=BATCH_FILES["clusters.parquet"])
    # public labels: some mixers and some truly bad addresses are already known as risky
    known = np.flatnonzero((mixer | bad) & (rng.random(n_addr) < 0.3))
    labels_t = pa.table(
        {
            "address": addrs[known],
            "label": ["mixer" if mixer[k] else "scam" for k in known],
            "address_type": ["mixer" if mixer[k] else "eoa" for k in known],
            "risk_level": rng.choice(["medium", "high", "critical"], known.size),
            "confidence_score": rng.random(known.size),
            "source": ["public"] * known.size,
        },
        schema=BATCH_FILES["address_labels.parquet"],
    )
    tables = {
        "alerts.parquet": alerts_t,
        "features.parquet": features_t,
        "clusters.parquet": clusters_t,
        "money_flows.parquet": flows_t,
        "address_labels.parquet": labels_t,
    }
    return SynthBatch(
        date,
        tables,
        pa.table({"alert_id": ids, "label": a_label}, schema=ALERT_LABELS),
        pa.Table.from_pylist(c_labels, schema=CLUSTER_LABELS),
    )


def parquet_bytes(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def _write(store: ObjectStore, folder: str, date: dt.date, files: dict[str, bytes], kind: str) -> str:
    entries = {}
    for name, data in files.items():
        store.put(folder + name, data)
        rows = pq.read_metadata(io.BytesIO(data)).num_rows
        entries[name] = FileEntry(rows, sha256_hex(data), len(data))
    manifest = Manifest(
        network=NETWORK,
        processing_date=date,
        window_days=WINDOW,
        batch_id=f"{NETWORK}-{date.isoformat()}-snapshot",  # labels name the batch they label
        published_at=dt.datetime(date.year, date.month, date.day, 6, tzinfo=dt.UTC),
        files=entries,
        kind=kind,
    )
    store.put(folder + MANIFEST, manifest.to_json())
    return folder + MANIFEST


def publish(store: ObjectStore, batch: SynthBatch, *, labels: bool = True) -> str:
    """Write the snapshot (and its ground truth) like the SOT does; returns the manifest key."""
    files = {name: parquet_bytes(table) for name, table in batch.tables.items()}
    key = _write(store, snapshot_key(NETWORK, batch.date, WINDOW), batch.date, files, "snapshot")
    if labels:
        label_files = {"alert_labels.parquet": batch.alert_labels, "cluster_labels.parquet": batch.cluster_labels}
        assert set(label_files) == set(LABEL_FILES)
        encoded = {name: parquet_bytes(t) for name, t in label_files.items()}
        _write(store, labels_key(NETWORK, batch.date, WINDOW), batch.date, encoded, "labels")
    return key


def event_for(store: ObjectStore, key: str) -> bytes:
    data = store.get(key)
    return store.object_created_event(key, len(data), sha256_hex(data), dt.datetime.now(dt.UTC))


FIRST_DAY = dt.date(2026, 1, 1)
TRAIN_DAYS = 6


@dataclass
class Published:
    store: FileObjectStore
    batches: list[SynthBatch]
    keys: list[str]

    @property
    def train_dates(self) -> list[dt.date]:
        return [b.date for b in self.batches[:TRAIN_DAYS]]

    @property
    def held_out(self) -> list[SynthBatch]:
        return self.batches[TRAIN_DAYS:]
