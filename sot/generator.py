"""Synthetic daily batches with planted ground truth: the tables a data owner would publish.

One call builds every parquet table of a (network, date) batch, its ground truth (alert and
cluster labels, published later) and the validator's trap alerts. The address universe comes
from (network, addresses, seed) and is shared by every date; the day's flows, features and
alerts come from (seed, network, date), so the same arguments give the same bytes.

    batch = generate_batch("ethereum", date(2026, 1, 2), alerts=1000, addresses=5000, flows=50_000)
    batch.tables["alerts.parquet"].num_rows, batch.alert_labels["label"]
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sot.alerts import (
    TYPOLOGIES,
    Alerts,
    choose_traps,
    cluster_type_name,
    group_clusters,
    raise_alerts,
    severity_name,
)
from sot.errors import SotInputError
from sot.features import Features, compute_features
from sot.flows import Flows, draw_flows
from sot.universe import (
    CLASSES,
    RISK_LEVELS,
    Universe,
    build_universe,
    day_number,
    label_source,
    label_text,
    network_code,
)
from streams import batch as contract

GENERATOR_VERSION = "riskstream-sot-synthetic/1"


@dataclass(frozen=True, slots=True)
class GeneratedBatch:
    """Everything about one (network, date) batch: public tables, ground truth, traps."""

    network: str
    processing_date: dt.date
    window_days: int
    params: dict[str, int]  # the generator arguments, seed included (never published)
    tables: dict[str, pa.Table]  # the snapshot files, by file name
    alert_labels: pa.Table
    cluster_labels: pa.Table
    traps: pa.Table

    def snapshot_files(self) -> dict[str, bytes]:
        return {name: to_parquet(table) for name, table in self.tables.items()}

    def label_files(self) -> dict[str, bytes]:
        return {
            "alert_labels.parquet": to_parquet(self.alert_labels),
            "cluster_labels.parquet": to_parquet(self.cluster_labels),
        }

    def trap_files(self) -> dict[str, bytes]:
        return {"traps.parquet": to_parquet(self.traps)}


def to_parquet(table: pa.Table) -> bytes:
    """Parquet bytes that depend only on the table (same table, same bytes)."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", write_statistics=True, store_schema=True)
    return sink.getvalue()


def check_params(network: str, *, alerts: int, addresses: int, flows: int, clusters: int, window_days: int) -> None:
    network_code(network)
    if not 1 <= window_days <= 90:
        msg = f"window_days must be 1..90, got {window_days}"
        raise SotInputError(msg)
    if addresses < 200:
        msg = f"need at least 200 addresses, got {addresses}"
        raise SotInputError(msg)
    if not addresses <= flows <= addresses * 40:
        msg = f"flows must be between addresses ({addresses}) and 40x addresses, got {flows}"
        raise SotInputError(msg)
    if not 10 <= alerts <= addresses // 2:
        msg = f"alerts must be between 10 and half the addresses ({addresses // 2}), got {alerts}"
        raise SotInputError(msg)
    if not 0 <= clusters <= alerts // 2:
        msg = f"clusters must be between 0 and half the alerts ({alerts // 2}), got {clusters}"
        raise SotInputError(msg)


def generate_batch(
    network: str,
    date: dt.date,
    *,
    alerts: int = 1000,
    addresses: int = 5000,
    flows: int = 50_000,
    clusters: int = 50,
    seed: int = 0,
    window_days: int = contract.DEFAULT_WINDOW_DAYS,
) -> GeneratedBatch:
    """The batch of ``network`` for ``date``; deterministic in all arguments."""
    check_params(network, alerts=alerts, addresses=addresses, flows=flows, clusters=clusters, window_days=window_days)
    universe = build_universe(network, addresses, seed)
    day = day_number(date)
    rng = np.random.default_rng([seed & 0xFFFFFFFF, network_code(network), day & 0xFFFFFFFF, window_days])
    flow = draw_flows(universe, rng, flows=flows, window_days=window_days, end=date)
    feats = compute_features(universe, flow, rng, window_days=window_days, end=date)
    found = raise_alerts(universe, feats, rng, count=alerts, day=day)
    groups = group_clusters(universe.size, flow, found, rng, count=clusters)
    trap_rows, trap_labels = choose_traps(universe, found, rng)

    stamp = date.strftime("%Y%m%d")
    alert_ids = np.array([f"{network}-{stamp}-{i:06d}" for i in range(alerts)], dtype=object)
    cluster_ids = [f"{network}-{stamp}-c{i:05d}" for i in range(len(groups))]
    cluster_of: list[str | None] = [None] * alerts
    for cid, (_, members) in zip(cluster_ids, groups, strict=True):
        for m in members:
            cluster_of[m] = cid

    tables = {
        "alerts.parquet": _alerts_table(universe, found, alert_ids, cluster_of, date, window_days),
        "features.parquet": _features_table(feats),
        "clusters.parquet": _clusters_table(universe, found, alert_ids, groups, cluster_ids),
        "money_flows.parquet": _flows_table(universe, flow),
        "address_labels.parquet": _labels_table(universe, feats, day),
    }
    risky = universe.risky
    order = np.argsort(alert_ids)
    alert_labels = pa.Table.from_arrays(
        [pa.array(alert_ids[order], pa.string()), pa.array(risky[found.node[order]].astype(np.int8), pa.int8())],
        schema=contract.ALERT_LABELS,
    )
    cluster_truth = [
        int(risky[found.node[seed]] or risky[np.unique(found.node[members])].mean() > 0.5) for seed, members in groups
    ]
    cluster_labels = pa.Table.from_arrays(
        [pa.array(cluster_ids, pa.string()), pa.array(cluster_truth, pa.int8())], schema=contract.CLUSTER_LABELS
    )
    traps = pa.Table.from_arrays(
        [pa.array(alert_ids[trap_rows], pa.string()), pa.array(trap_labels.astype(np.int8), pa.int8())],
        schema=contract.TRAPS,
    )
    params = {
        "alerts": alerts,
        "addresses": addresses,
        "flows": flows,
        "clusters": clusters,
        "seed": seed,
        "window_days": window_days,
    }
    return GeneratedBatch(network, date, window_days, params, tables, alert_labels, cluster_labels, traps)


def _alerts_table(
    u: Universe, a: Alerts, ids: np.ndarray, cluster_of: list[str | None], date: dt.date, window_days: int
) -> pa.Table:
    n = len(ids)
    order = np.argsort(ids)
    s = contract.ALERTS
    cols = [
        pa.array(ids[order], pa.string()),
        pa.array([date] * n, pa.date32()),
        pa.array(np.full(n, window_days, dtype=np.int32), pa.int32()),
        pa.array([u.network] * n, pa.string()),
        pa.array(u.addresses[a.node[order]], pa.string()),
        pa.array([TYPOLOGIES[t] for t in a.typology[order].tolist()], pa.string()),
        pa.array([a.pattern_id[i] for i in order.tolist()], pa.string()),
        pa.array([severity_name(v) for v in a.severity[order].tolist()], pa.string()),
        pa.array([a.suspected_type[i] for i in order.tolist()], pa.string()),
        pa.array(a.confidence[order], pa.float64()),
        pa.array(a.volume[order], pa.float64()),
        pa.array([a.description[i] for i in order.tolist()], pa.string()),
        pa.array([a.indicators[i] for i in order.tolist()], pa.list_(pa.string())),
        pa.array([cluster_of[i] for i in order.tolist()], pa.string()),
    ]
    return pa.Table.from_arrays(cols, schema=s)


def _features_table(ft: Features) -> pa.Table:
    s = contract.FEATURES
    return pa.Table.from_arrays([pa.array(ft.columns[f.name], f.type) for f in s], schema=s)


def _clusters_table(
    u: Universe, a: Alerts, ids: np.ndarray, groups: list[tuple[int, list[int]]], cluster_ids: list[str]
) -> pa.Table:
    rows: dict[str, list[object]] = {f.name: [] for f in contract.CLUSTERS}
    for cid, (seed, members) in zip(cluster_ids, groups, strict=True):
        m = np.array(members)
        rows["cluster_id"].append(cid)
        rows["cluster_type"].append(cluster_type_name(int(a.typology[seed])))
        rows["primary_address"].append(u.addresses[a.node[seed]])
        rows["related_alert_ids"].append(sorted(ids[m].tolist()))
        rows["addresses_involved"].append(sorted(set(u.addresses[a.node[m]].tolist())))
        rows["total_alerts"].append(len(members))
        rows["total_volume_usd"].append(round(float(a.volume[m].sum()), 2))
        rows["severity_max"].append(severity_name(int(a.severity[m].max())))
        rows["confidence_avg"].append(round(float(a.confidence[m].mean()), 6))
    s = contract.CLUSTERS
    return pa.Table.from_arrays([pa.array(rows[f.name], f.type) for f in s], schema=s)


def _flows_table(u: Universe, f: Flows) -> pa.Table:
    s = contract.MONEY_FLOWS
    cols = [
        pa.array(u.addresses[f.src], pa.string()),
        pa.array(u.addresses[f.dst], pa.string()),
        pa.array(np.minimum(f.tx_count, 2**31 - 1).astype(np.int32), pa.int32()),
        pa.array(f.amount, pa.float64()),
        pa.array(f.first_ms, s.field("first_seen").type),
        pa.array(f.last_ms, s.field("last_seen").type),
        pa.array(f.active_days.astype(np.int32), pa.int32()),
        pa.array(np.round(f.reciprocity, 6), pa.float64()),
        pa.array(f.bidirectional, pa.bool_()),
    ]
    return pa.Table.from_arrays(cols, schema=s)


def _labels_table(u: Universe, ft: Features, day: int) -> pa.Table:
    """Public labels of the batch's addresses known before the date (partial, sometimes wrong)."""
    node = ft.node[u.label_day[ft.node] < day]
    node = node[np.argsort(u.addresses[node])]
    cls = u.label_class[node].tolist()
    cols = [
        pa.array(u.addresses[node], pa.string()),
        pa.array([label_text(c) for c in cls], pa.string()),
        pa.array([CLASSES[c] for c in cls], pa.string()),
        pa.array([RISK_LEVELS[r] for r in u.label_risk[node].tolist()], pa.string()),
        pa.array(np.round(u.label_confidence[node], 4), pa.float64()),
        pa.array([label_source(c) for c in cls], pa.string()),
    ]
    return pa.Table.from_arrays(cols, schema=contract.ADDRESS_LABELS)
