"""A data owner's batch files built with plain pyarrow and numpy: a stranger's data, not the SOT generator's.

The owner writes the contract's files itself (its own id scheme, an int64 column here and
there, timestamps in microseconds) and its ground truth. A planted signal (illicit alerts have
larger, more bursty flows) lets trained miners rank the alerts better than chance.

    owner = build_owner_batch("torus", date(2026, 1, 2), alerts=150, seed=1)
    write_files(owner.files, tmp / "batch"); write_files(owner.labels, tmp / "truth")
    store.put("incoming/alerts.parquet", parquet_bytes(owner.files["alerts.parquet"]))
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

_US = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True, slots=True)
class OwnerBatch:
    files: dict[str, pa.Table]  # alerts.parquet, features.parquet, ... (not necessarily the contract's types)
    labels: dict[str, pa.Table]  # alert_labels.parquet, cluster_labels.parquet


def parquet_bytes(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def write_files(tables: dict[str, pa.Table], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        pq.write_table(table, folder / name)
    return folder


def build_owner_batch(
    network: str, date: dt.date, *, alerts: int = 150, addresses: int = 600, flows: int = 3000, seed: int = 0
) -> OwnerBatch:
    rng = np.random.default_rng([seed, date.toordinal()])
    addr = np.array([f"T{network[:2].upper()}{i:08d}{seed:02d}" for i in range(addresses)], dtype=object)
    illicit_addr = rng.random(addresses) < 0.2
    alerted = rng.choice(addresses, size=alerts, replace=False)
    ids = np.array([f"case-{date:%Y%m%d}-{i:05d}" for i in range(alerts)], dtype=object)
    end = dt.datetime.combine(date, dt.time(23, 0), tzinfo=dt.UTC)

    src = rng.integers(0, addresses, flows)
    dst = (src + rng.integers(1, addresses, flows)) % addresses
    scale = np.where(illicit_addr[src], 8000.0, 900.0)
    amount = np.round(rng.gamma(1.5, scale), 2)
    tx = rng.integers(1, np.where(illicit_addr[src], 40, 6))
    first = [end - dt.timedelta(seconds=int(s)) for s in rng.integers(86_400, 7 * 86_400, flows)]
    last = [f + dt.timedelta(seconds=int(s)) for f, s in zip(first, rng.integers(0, 72_000, flows), strict=True)]
    money_flows = pa.table(
        {
            "from_address": pa.array(addr[src], pa.string()),
            "to_address": pa.array(addr[dst], pa.string()),
            "tx_count": pa.array(tx, pa.int64()),  # int64 where the contract says int32: a lossless cast
            "amount_usd_sum": pa.array(amount, pa.float64()),
            "first_seen": pa.array(first, _US),  # microseconds, UTC
            "last_seen": pa.array(last, _US),
            "active_days": pa.array(rng.integers(1, 8, flows), pa.int32()),
            "reciprocity_ratio": pa.array(np.round(rng.random(flows), 4), pa.float64()),
            "is_bidirectional": pa.array(rng.random(flows) < 0.1, pa.bool_()),
        }
    )

    sent = np.bincount(src, weights=amount, minlength=addresses)
    got = np.bincount(dst, weights=amount, minlength=addresses)
    n_out = np.bincount(src, minlength=addresses)
    n_in = np.bincount(dst, minlength=addresses)
    tx_out = np.bincount(src, weights=tx, minlength=addresses)
    tx_in = np.bincount(dst, weights=tx, minlength=addresses)
    unit = rng.random((12, addresses))
    first_seen = [end - dt.timedelta(seconds=int(s)) for s in rng.integers(7 * 86_400, 400 * 86_400, addresses)]
    features = pa.table(
        {
            "address": pa.array(addr, pa.string()),
            "degree_in": pa.array(n_in, pa.int32()),
            "degree_out": pa.array(n_out, pa.int32()),
            "total_in_usd": got,
            "total_out_usd": sent,
            "tx_in_count": pa.array(tx_in.astype(np.int32), pa.int32()),
            "tx_out_count": pa.array(tx_out.astype(np.int32), pa.int32()),
            "avg_tx_in_usd": np.where(tx_in > 0, got / np.maximum(tx_in, 1), 0.0),
            "avg_tx_out_usd": np.where(tx_out > 0, sent / np.maximum(tx_out, 1), 0.0),
            "max_tx_usd": np.maximum(sent, got) / 2,
            "activity_days": pa.array(rng.integers(1, 8, addresses), pa.int32()),
            "burst_factor": 1 + unit[0] * np.where(illicit_addr, 6.0, 1.0),
            "reciprocity_ratio": unit[1],
            "velocity_score": unit[2],
            "structuring_score": np.where(illicit_addr, unit[3], unit[3] / 3),
            "pagerank": unit[4] / addresses,
            "betweenness": unit[5] / 10,
            "clustering_coefficient": unit[6],
            "khop1_count": pa.array(n_in + n_out, pa.int32()),
            "khop2_count": pa.array((n_in + n_out) * 3, pa.int32()),
            "khop3_count": pa.array((n_in + n_out) * 9, pa.int32()),
            "behavioral_anomaly_score": unit[7],
            "graph_anomaly_score": unit[8],
            "global_anomaly_score": (unit[7] + unit[8]) / 2,
            "is_exchange_like": unit[9] < 0.05,
            "is_mixer_like": unit[10] < 0.03,
            "first_seen": pa.array(first_seen, _US),
            "last_seen": pa.array([end] * addresses, _US),
        }
    )

    clusters_of = alerts // 10
    cluster_ids = np.array([f"grp-{date:%Y%m%d}-{c:03d}" for c in range(clusters_of)], dtype=object)
    member = rng.integers(-clusters_of, clusters_of, alerts)  # negative: in no cluster
    alert_cluster = [cluster_ids[m] if m >= 0 else None for m in member.tolist()]
    levels = np.array(["low", "medium", "high", "critical"], dtype=object)
    severity = levels[rng.integers(0, 4, alerts)]
    volume = np.round(sent[alerted] + got[alerted], 2)
    confidence = np.round(rng.uniform(0.3, 0.95, alerts), 3)
    alerts_t = pa.table(
        {
            "alert_id": pa.array(ids, pa.string()),
            "processing_date": pa.array([date] * alerts, pa.date32()),
            "window_days": pa.array([7] * alerts, pa.int64()),
            "network": pa.array([network] * alerts, pa.string()),
            "address": pa.array(addr[alerted], pa.string()),
            "typology_type": pa.array(rng.choice(["layering", "peel_chain", "fan_out"], alerts), pa.string()),
            "pattern_id": pa.array([f"rule-{k}" for k in rng.integers(1, 9, alerts)], pa.string()),
            "severity": pa.array(severity, pa.string()),
            "suspected_address_type": pa.array(["unknown"] * alerts, pa.string()),
            "alert_confidence_score": confidence,
            "volume_usd": volume,
            "description": pa.array(["owner case"] * alerts, pa.string()),
            "risk_indicators": pa.array([["owner_rule"]] * alerts, pa.list_(pa.string())),
            "cluster_id": pa.array(alert_cluster, pa.string()),
        }
    )
    members: dict[str, list[int]] = {c: [] for c in cluster_ids.tolist()}
    for i, c in enumerate(alert_cluster):
        if c is not None:
            members[c].append(i)
    kept = [c for c in cluster_ids.tolist() if members[c]]
    clusters_t = pa.table(
        {
            "cluster_id": pa.array(kept, pa.string()),
            "cluster_type": pa.array(["shared_counterparty"] * len(kept), pa.string()),
            "primary_address": pa.array([addr[alerted[members[c][0]]] for c in kept], pa.string()),
            "related_alert_ids": pa.array([[ids[i] for i in members[c]] for c in kept], pa.list_(pa.string())),
            "addresses_involved": pa.array(
                [sorted({addr[alerted[i]] for i in members[c]}) for c in kept], pa.list_(pa.string())
            ),
            "total_alerts": pa.array([len(members[c]) for c in kept], pa.int32()),
            "total_volume_usd": pa.array([float(volume[members[c]].sum()) for c in kept], pa.float64()),
            "severity_max": pa.array(["high"] * len(kept), pa.string()),
            "confidence_avg": pa.array([float(confidence[members[c]].mean()) for c in kept], pa.float64()),
        }
    )
    labelled = np.nonzero(illicit_addr)[0][:20]
    address_labels = pa.table(
        {
            "address": pa.array(addr[labelled], pa.string()),
            "label": pa.array(["reported"] * len(labelled), pa.string()),
            "address_type": pa.array(["scam"] * len(labelled), pa.string()),
            "risk_level": pa.array(["high"] * len(labelled), pa.string()),
            "confidence_score": pa.array([0.6] * len(labelled), pa.float64()),
            "source": pa.array(["owner_reports"] * len(labelled), pa.string()),
        }
    )
    truth = illicit_addr[alerted].astype(np.int8)
    labels = {
        "alert_labels.parquet": pa.table({"alert_id": pa.array(ids, pa.string()), "label": pa.array(truth, pa.int8())}),
        "cluster_labels.parquet": pa.table(
            {
                "cluster_id": pa.array(kept, pa.string()),
                "label": pa.array([int(truth[members[c]].max()) for c in kept], pa.int8()),
            }
        ),
    }
    files = {
        "alerts.parquet": alerts_t,
        "features.parquet": features,
        "clusters.parquet": clusters_t,
        "money_flows.parquet": money_flows,
        "address_labels.parquet": address_labels,
    }
    return OwnerBatch(files, labels)
