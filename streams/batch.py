"""The SOT's batch contract: object layout, parquet schemas, manifests, labels and traps.

The data owner writes it, miners and the validator read it; neither imports the other, so
the contract lives here beside the Avro schemas.

    key = snapshot_key("ethereum", date(2026, 1, 2), 7, "alerts.parquet")
    manifest = Manifest.from_json(store.get(snapshot_key(..., MANIFEST)))
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from streams.errors import EventError

SCHEMA_VERSION = "1.0"
NETWORKS = ("ethereum", "bitcoin", "tron", "polygon", "bsc")
DEFAULT_WINDOW_DAYS = 7
MANIFEST = "manifest.json"
RISK_LEVELS = ("low", "medium", "high", "critical")
SEVERITIES = ("low", "medium", "high", "critical")

_TS = pa.timestamp("ms", tz="UTC")

ALERTS = pa.schema(
    [
        ("alert_id", pa.string()),
        ("processing_date", pa.date32()),
        ("window_days", pa.int32()),
        ("network", pa.string()),
        ("address", pa.string()),
        ("typology_type", pa.string()),
        ("pattern_id", pa.string()),
        ("severity", pa.string()),
        ("suspected_address_type", pa.string()),
        ("alert_confidence_score", pa.float64()),
        ("volume_usd", pa.float64()),
        ("description", pa.string()),
        ("risk_indicators", pa.list_(pa.string())),
        ("cluster_id", pa.string()),  # null when the alert is in no cluster
    ]
)

FEATURES = pa.schema(
    [
        ("address", pa.string()),
        ("degree_in", pa.int32()),
        ("degree_out", pa.int32()),
        ("total_in_usd", pa.float64()),
        ("total_out_usd", pa.float64()),
        ("tx_in_count", pa.int32()),
        ("tx_out_count", pa.int32()),
        ("avg_tx_in_usd", pa.float64()),
        ("avg_tx_out_usd", pa.float64()),
        ("max_tx_usd", pa.float64()),
        ("activity_days", pa.int32()),
        ("burst_factor", pa.float64()),
        ("reciprocity_ratio", pa.float64()),
        ("velocity_score", pa.float64()),
        ("structuring_score", pa.float64()),
        ("pagerank", pa.float64()),
        ("betweenness", pa.float64()),
        ("clustering_coefficient", pa.float64()),
        ("khop1_count", pa.int32()),
        ("khop2_count", pa.int32()),
        ("khop3_count", pa.int32()),
        ("behavioral_anomaly_score", pa.float64()),
        ("graph_anomaly_score", pa.float64()),
        ("global_anomaly_score", pa.float64()),
        ("is_exchange_like", pa.bool_()),
        ("is_mixer_like", pa.bool_()),
        ("first_seen", _TS),
        ("last_seen", _TS),
    ]
)

CLUSTERS = pa.schema(
    [
        ("cluster_id", pa.string()),
        ("cluster_type", pa.string()),
        ("primary_address", pa.string()),
        ("related_alert_ids", pa.list_(pa.string())),
        ("addresses_involved", pa.list_(pa.string())),
        ("total_alerts", pa.int32()),
        ("total_volume_usd", pa.float64()),
        ("severity_max", pa.string()),
        ("confidence_avg", pa.float64()),
    ]
)

MONEY_FLOWS = pa.schema(
    [
        ("from_address", pa.string()),
        ("to_address", pa.string()),
        ("tx_count", pa.int32()),
        ("amount_usd_sum", pa.float64()),
        ("first_seen", _TS),
        ("last_seen", _TS),
        ("active_days", pa.int32()),
        ("reciprocity_ratio", pa.float64()),
        ("is_bidirectional", pa.bool_()),
    ]
)

# public labels known before the processing date (partial): never the ground truth of the date
ADDRESS_LABELS = pa.schema(
    [
        ("address", pa.string()),
        ("label", pa.string()),
        ("address_type", pa.string()),
        ("risk_level", pa.string()),
        ("confidence_score", pa.float64()),
        ("source", pa.string()),
    ]
)

# ground truth of one date, published at T + tau under labels/
ALERT_LABELS = pa.schema([("alert_id", pa.string()), ("label", pa.int8())])
CLUSTER_LABELS = pa.schema([("cluster_id", pa.string()), ("label", pa.int8())])
# validator-only: alerts of the batch whose answer is known in advance
TRAPS = pa.schema([("alert_id", pa.string()), ("expected_label", pa.int8())])

BATCH_FILES: dict[str, pa.Schema] = {
    "alerts.parquet": ALERTS,
    "features.parquet": FEATURES,
    "clusters.parquet": CLUSTERS,
    "money_flows.parquet": MONEY_FLOWS,
    "address_labels.parquet": ADDRESS_LABELS,
}
LABEL_FILES: dict[str, pa.Schema] = {"alert_labels.parquet": ALERT_LABELS, "cluster_labels.parquet": CLUSTER_LABELS}
TRAP_FILES: dict[str, pa.Schema] = {"traps.parquet": TRAPS}


def snapshot_key(network: str, date: dt.date, window_days: int, name: str = "") -> str:
    return f"snapshots/{network}/{date.isoformat()}/{window_days}/{name}"


def labels_key(network: str, date: dt.date, window_days: int, name: str = "") -> str:
    return f"labels/{network}/{date.isoformat()}/{window_days}/{name}"


def traps_key(network: str, date: dt.date, window_days: int, name: str = "") -> str:
    return f"validator-private/traps/{network}/{date.isoformat()}/{window_days}/{name}"


def batch_key(network: str, date: dt.date) -> str:
    """Kafka key of sot.* events and ensemble.batches records."""
    return f"{network}:{date.isoformat()}"


@dataclass(frozen=True, slots=True)
class FileEntry:
    rows: int
    sha256: str
    bytes: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """What one published folder holds; ``kind`` is snapshot, labels or traps."""

    network: str
    processing_date: dt.date
    window_days: int
    batch_id: str
    published_at: dt.datetime
    files: dict[str, FileEntry]
    kind: str = "snapshot"
    schema_version: str = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "network": self.network,
                "processing_date": self.processing_date.isoformat(),
                "window_days": self.window_days,
                "batch_id": self.batch_id,
                "kind": self.kind,
                "schema_version": self.schema_version,
                "published_at": self.published_at.astimezone(dt.UTC).isoformat(),
                "files": {n: {"rows": f.rows, "sha256": f.sha256, "bytes": f.bytes} for n, f in self.files.items()},
                "extra": self.extra,
            },
            option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS,
        )

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            raw = orjson.loads(data)
            return cls(
                network=str(raw["network"]),
                processing_date=dt.date.fromisoformat(raw["processing_date"]),
                window_days=int(raw["window_days"]),
                batch_id=str(raw["batch_id"]),
                published_at=dt.datetime.fromisoformat(raw["published_at"]),
                files={
                    str(n): FileEntry(int(f["rows"]), str(f["sha256"]), int(f["bytes"]))
                    for n, f in raw["files"].items()
                },
                kind=str(raw.get("kind", "snapshot")),
                schema_version=str(raw.get("schema_version", SCHEMA_VERSION)),
                extra=dict(raw.get("extra", {})),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            msg = f"not a batch manifest: {type(exc).__name__}: {exc}"
            raise EventError(msg) from exc
