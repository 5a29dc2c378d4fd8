"""This miner's own features: alert fields, the address's graph features and its money-flow profile.

matrix = alert_matrix(batch)      # rows in batch.alerts order, columns FEATURE_NAMES
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from miner.scorer import Batch
from streams.batch import MONEY_FLOWS, FlowFile

Matrix = npt.NDArray[np.float64]

_ADDRESS_COLUMNS = (
    "degree_in",
    "degree_out",
    "total_in_usd",
    "total_out_usd",
    "max_tx_usd",
    "burst_factor",
    "reciprocity_ratio",
    "velocity_score",
    "structuring_score",
    "pagerank",
    "khop2_count",
    "behavioral_anomaly_score",
    "graph_anomaly_score",
    "global_anomaly_score",
    "is_exchange_like",
    "is_mixer_like",
)
_SEVERITY = {"low": 0.0, "medium": 1.0, "high": 2.0, "critical": 3.0}
FEATURE_NAMES = (
    "log_volume",
    "confidence",
    "severity",
    "indicators",
    "in_cluster",
    *_ADDRESS_COLUMNS,
    "flow_out_log_usd",
    "flow_in_log_usd",
    "flow_out_peers",
    "flow_in_peers",
    "flow_to_mixers_share",
    "labelled_risky",
)
VERSION = "hgb-features-1"
_FLOW_COLUMNS = ("from_address", "to_address", "amount_usd_sum")


def _lookup(keys: pa.ChunkedArray, universe: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.int64]:
    found = pc.index_in(keys, value_set=pa.chunked_array(universe).combine_chunks())
    return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _gather(values: npt.ArrayLike, where: npt.NDArray[np.int64]) -> Matrix:
    column = np.asarray(values, dtype=np.float64)
    out = np.full(where.size, np.nan)
    hit = where >= 0
    out[hit] = column[where[hit]]
    return out


def _flow_side(flows: pa.Table, side: str, mixers: pa.Array) -> pa.Table:
    grouped = flows.group_by(side).aggregate([("amount_usd_sum", "sum"), ("amount_usd_sum", "count")])
    if side == "from_address":
        to_mixer = pc.is_in(flows["to_address"], value_set=mixers)
        risky = flows.append_column("to_mixer", pc.if_else(to_mixer, flows["amount_usd_sum"], 0.0))
        share = risky.group_by(side).aggregate([("to_mixer", "sum")])
        grouped = grouped.join(share, side)
    return grouped


def alert_matrix(batch: Batch) -> Matrix:
    """One row per alert of the batch, columns in ``FEATURE_NAMES`` order (NaN where unknown)."""
    alerts, features = batch.alerts, batch.features
    flows = batch.money_flows
    if isinstance(flows, FlowFile):  # the reader keeps large flow files as parquet: read the 3 columns needed
        flows = pa.Table.from_batches(
            list(flows.batches(_FLOW_COLUMNS)), pa.schema([MONEY_FLOWS.field(c) for c in _FLOW_COLUMNS])
        )
    else:
        flows = flows.select(list(_FLOW_COLUMNS))
    addresses = alerts["address"]
    columns: list[Matrix] = [
        np.log1p(np.nan_to_num(alerts["volume_usd"].to_numpy(zero_copy_only=False).astype(np.float64))),
        alerts["alert_confidence_score"].to_numpy(zero_copy_only=False).astype(np.float64),
        np.array([_SEVERITY.get(s, np.nan) for s in alerts["severity"].to_pylist()]),
        np.asarray(pc.fill_null(pc.list_value_length(alerts["risk_indicators"]), 0), dtype=np.float64),
        np.asarray(pc.is_valid(alerts["cluster_id"]), dtype=np.float64),
    ]
    where = _lookup(addresses, features["address"])
    for name in _ADDRESS_COLUMNS:
        column = features[name]
        values = column.cast(pa.float64()) if pa.types.is_boolean(column.type) else column
        columns.append(_gather(values.to_numpy(zero_copy_only=False), where))
    mixers = features.filter(pc.equal(features["is_mixer_like"], True))["address"].combine_chunks()
    out = _flow_side(flows, "from_address", mixers)
    inbound = _flow_side(flows, "to_address", mixers)
    at = _lookup(addresses, out["from_address"])
    sent = _gather(out["amount_usd_sum_sum"].to_numpy(zero_copy_only=False), at)
    columns += [
        np.log1p(sent),
        np.log1p(
            _gather(
                inbound["amount_usd_sum_sum"].to_numpy(zero_copy_only=False), _lookup(addresses, inbound["to_address"])
            )
        ),
        _gather(out["amount_usd_sum_count"].to_numpy(zero_copy_only=False), at),
        _gather(
            inbound["amount_usd_sum_count"].to_numpy(zero_copy_only=False), _lookup(addresses, inbound["to_address"])
        ),
        _gather(out["to_mixer_sum"].to_numpy(zero_copy_only=False), at) / np.where(sent > 0, sent, np.nan),
    ]
    labels = batch.address_labels
    risky = labels.filter(pc.is_in(labels["risk_level"], value_set=pa.array(["high", "critical"])))["address"]
    columns.append(np.asarray(pc.is_in(addresses, value_set=risky.combine_chunks()), dtype=np.float64))
    return np.column_stack(columns) if len(alerts) else np.empty((0, len(FEATURE_NAMES)))


def cluster_matrix(batch: Batch, alert_scores: Matrix) -> tuple[list[str], Matrix]:
    """Per cluster: the mean and max of its alerts' scores and its size (rows in batch.clusters order)."""
    ids = [str(i) for i in batch.clusters["cluster_id"].to_pylist()]
    alert_of = {a: i for i, a in enumerate(batch.alerts["alert_id"].to_pylist())}
    rows = []
    for related in batch.clusters["related_alert_ids"].to_pylist():
        scores = [alert_scores[alert_of[a]] for a in related or [] if a in alert_of]
        rows.append((float(np.mean(scores)), float(np.max(scores)), float(len(scores))) if scores else (0.0, 0.0, 0.0))
    return ids, np.asarray(rows, dtype=np.float64).reshape(len(ids), 3)
