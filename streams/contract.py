"""The batch contract described column by column: type, meaning, unit, range, nullability, example.

``streams.batch`` builds its parquet schemas from these columns, ``docs/batch-contract.md`` is
rendered from them (``render_markdown``) and ``riskstream sot contract --json`` prints
``as_json()``, so the code, the document and the machine-readable form cannot disagree.

    ALERT_COLUMNS[0].name, ALERT_COLUMNS[0].type       # "alert_id", pa.string()
    print(render_markdown())                      # python -m streams.contract > docs/batch-contract.md
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = "1.0"
# a network is any name of this form (the data owner's, e.g. "torus"); no list to register in
NETWORK_PATTERN = "[a-z0-9][a-z0-9_-]{0,31}"
TS = pa.timestamp("ms", tz="UTC")
LEVELS = ("low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a contract file; ``low``/``high`` bound numbers, ``values`` lists the allowed strings."""

    name: str
    type: pa.DataType
    meaning: str
    example: str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    values: tuple[str, ...] = ()
    nullable: bool = True
    key: bool = False  # an id: never null, unique where the file says so

    @property
    def range(self) -> str:
        if self.values:
            return " / ".join(self.values)
        if self.low is not None and self.high is not None:
            return f"{_num(self.low)} .. {_num(self.high)}"
        if self.low is not None:
            return f">= {_num(self.low)}"
        return ""


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _share(name: str, meaning: str, example: str = "0.42") -> Column:
    return Column(name, pa.float64(), meaning, example, "ratio", 0.0, 1.0)


def _usd(name: str, meaning: str, example: str = "1520.75") -> Column:
    return Column(name, pa.float64(), meaning, example, "USD", 0.0)


def _count(name: str, meaning: str, example: str = "12", unit: str = "count") -> Column:
    return Column(name, pa.int32(), meaning, example, unit, 0.0)


ALERT_COLUMNS = (
    Column("alert_id", pa.string(), "id of the alert, unique in the batch", "torus-20260102-000017", key=True),
    Column("processing_date", pa.date32(), "the batch's date (UTC day its window ends)", "2026-01-02", nullable=False),
    Column("window_days", pa.int32(), "length of the batch's window", "7", "days", 1.0, 90.0, nullable=False),
    Column("network", pa.string(), "the batch's network", "torus", nullable=False),
    Column("address", pa.string(), "the alerted address; has a row in features.parquet", "0x9f2c...", nullable=False),
    Column("typology_type", pa.string(), "typology the owner's rule engine matched", "layering"),
    Column("pattern_id", pa.string(), "id of the rule or pattern that raised the alert", "p-layering-03"),
    Column("severity", pa.string(), "severity the owner assigned", "high", values=LEVELS),
    Column("suspected_address_type", pa.string(), "what the owner thinks the address is", "mixer"),
    _share("alert_confidence_score", "the owner's own confidence in the alert", "0.71"),
    _usd("volume_usd", "value moved by the alerted activity in the window"),
    Column("description", pa.string(), "free text of the alert", "funds split over 14 hops"),
    Column("risk_indicators", pa.list_(pa.string()), "short indicator tags", '["peel_chain", "new_address"]'),
    Column("cluster_id", pa.string(), "cluster the alert belongs to (clusters.parquet); null: none", "torus-c00003"),
)

FEATURE_COLUMNS = (
    Column("address", pa.string(), "the address these features describe, unique", "0x9f2c...", key=True),
    _count("degree_in", "distinct senders to the address in the window"),
    _count("degree_out", "distinct receivers from the address in the window"),
    _usd("total_in_usd", "value received in the window"),
    _usd("total_out_usd", "value sent in the window"),
    _count("tx_in_count", "incoming transactions in the window"),
    _count("tx_out_count", "outgoing transactions in the window"),
    _usd("avg_tx_in_usd", "mean incoming transaction value"),
    _usd("avg_tx_out_usd", "mean outgoing transaction value"),
    _usd("max_tx_usd", "largest single transaction value"),
    _count("activity_days", "days with any transaction in the window", "5", "days"),
    Column("burst_factor", pa.float64(), "peak daily activity over mean daily activity", "2.4", "ratio", 0.0),
    _share("reciprocity_ratio", "share of counterparties that also send back"),
    Column("velocity_score", pa.float64(), "how fast received value is sent on", "0.8", "score", 0.0),
    Column("structuring_score", pa.float64(), "how much amounts cluster under thresholds", "0.1", "score", 0.0),
    Column("pagerank", pa.float64(), "PageRank in the window's flow graph", "0.00012", "score", 0.0),
    Column("betweenness", pa.float64(), "betweenness centrality in the flow graph", "0.003", "score", 0.0),
    _share("clustering_coefficient", "local clustering coefficient in the flow graph"),
    _count("khop1_count", "addresses within 1 hop"),
    _count("khop2_count", "addresses within 2 hops"),
    _count("khop3_count", "addresses within 3 hops"),
    Column("behavioral_anomaly_score", pa.float64(), "owner's behavioural anomaly score", "0.3", "score", 0.0),
    Column("graph_anomaly_score", pa.float64(), "owner's graph anomaly score", "0.2", "score", 0.0),
    Column("global_anomaly_score", pa.float64(), "owner's combined anomaly score", "0.25", "score", 0.0),
    Column("is_exchange_like", pa.bool_(), "behaves like an exchange hot wallet", "false"),
    Column("is_mixer_like", pa.bool_(), "behaves like a mixer", "false"),
    Column("first_seen", TS, "first transaction of the address", "2025-11-03T08:12:00Z", "UTC instant, ms"),
    Column("last_seen", TS, "last transaction of the address in the window", "2026-01-02T21:40:00Z", "UTC instant, ms"),
)

CLUSTER_COLUMNS = (
    Column("cluster_id", pa.string(), "id of the cluster, unique in the batch", "torus-c00003", key=True),
    Column("cluster_type", pa.string(), "what ties the cluster together", "fan_in_network"),
    Column("primary_address", pa.string(), "the cluster's central address", "0x9f2c..."),
    Column("related_alert_ids", pa.list_(pa.string()), "alerts in the cluster (alerts.parquet ids)", '["a1", "a2"]'),
    Column("addresses_involved", pa.list_(pa.string()), "distinct addresses of those alerts", '["0x9f2c..."]'),
    Column("total_alerts", pa.int32(), "number of alerts in the cluster", "4", "count", 0.0),
    _usd("total_volume_usd", "sum of the alerts' volume_usd"),
    Column("severity_max", pa.string(), "highest severity among the alerts", "critical", values=LEVELS),
    _share("confidence_avg", "mean alert_confidence_score of the alerts"),
)

FLOW_COLUMNS = (
    Column("from_address", pa.string(), "sending address of the edge", "0x9f2c...", key=True),
    Column("to_address", pa.string(), "receiving address of the edge", "0x11ab...", key=True),
    Column("tx_count", pa.int32(), "transactions along the edge in the window", "3", "count", 0.0),
    Column("amount_usd_sum", pa.float64(), "value sent along the edge; finite", "880.1", "USD", 0.0),
    Column("first_seen", TS, "first transaction along the edge", "2025-12-27T10:00:00Z", "UTC instant, ms"),
    Column("last_seen", TS, "last transaction along the edge", "2026-01-02T09:30:00Z", "UTC instant, ms"),
    _count("active_days", "days with a transaction along the edge", "2", "days"),
    _share("reciprocity_ratio", "value sent back over value sent, capped at 1"),
    Column("is_bidirectional", pa.bool_(), "the receiver also sent to the sender in the window", "true"),
)

ADDRESS_LABEL_COLUMNS = (
    Column("address", pa.string(), "a labelled address", "0x11ab...", key=True),
    Column("label", pa.string(), "public label text", "Binance hot wallet 3"),
    Column("address_type", pa.string(), "kind of entity", "exchange"),
    Column("risk_level", pa.string(), "public risk level", "low", values=LEVELS),
    _share("confidence_score", "the label source's confidence", "0.9"),
    Column("source", pa.string(), "where the label comes from", "exchange_attestation"),
)

ALERT_LABEL_COLUMNS = (
    Column("alert_id", pa.string(), "an alert of the labelled batch, each once", "torus-20260102-000017", key=True),
    Column("label", pa.int8(), "ground truth: 1 illicit, 0 not", "1", "class", 0.0, 1.0, nullable=False),
)

CLUSTER_LABEL_COLUMNS = (
    Column("cluster_id", pa.string(), "a cluster of the labelled batch, each once", "torus-c00003", key=True),
    Column("label", pa.int8(), "ground truth: 1 illicit, 0 not", "0", "class", 0.0, 1.0, nullable=False),
)

TRAP_COLUMNS = (
    Column("alert_id", pa.string(), "an alert of the batch whose answer the validator knows", "a17", key=True),
    Column("expected_label", pa.int8(), "the known answer", "1", "class", 0.0, 1.0, nullable=False),
)


@dataclass(frozen=True, slots=True)
class FileSpec:
    name: str
    folder: str  # snapshots/, labels/ or the validator's private store
    meaning: str
    columns: tuple[Column, ...]
    unique: tuple[str, ...] = ()  # columns whose values are unique in the file

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(c.name, c.type) for c in self.columns])

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


FILES = (
    FileSpec("alerts.parquet", "snapshot", "the alerts to score; at least one row", ALERT_COLUMNS, ("alert_id",)),
    FileSpec("features.parquet", "snapshot", "the owner's per-address analytics", FEATURE_COLUMNS, ("address",)),
    FileSpec("clusters.parquet", "snapshot", "groups of related alerts to score", CLUSTER_COLUMNS, ("cluster_id",)),
    FileSpec("money_flows.parquet", "snapshot", "aggregated transfer edges of the window", FLOW_COLUMNS),
    FileSpec(
        "address_labels.parquet",
        "snapshot",
        "public labels known before the date (partial; never the date's ground truth)",
        ADDRESS_LABEL_COLUMNS,
    ),
    FileSpec(
        "alert_labels.parquet", "labels", "ground truth of the alerts, at T + tau", ALERT_LABEL_COLUMNS, ("alert_id",)
    ),
    FileSpec(
        "cluster_labels.parquet",
        "labels",
        "ground truth of the clusters, at T + tau",
        CLUSTER_LABEL_COLUMNS,
        ("cluster_id",),
    ),
    FileSpec("traps.parquet", "traps", "validator-only, never in the miners' store", TRAP_COLUMNS, ("alert_id",)),
)
SPECS = {f.name: f for f in FILES}

MANIFEST_FIELDS = (
    ("network", "string", "the batch's network (NETWORK_PATTERN)", "torus"),
    ("processing_date", "string", "ISO date of the batch", "2026-01-02"),
    ("window_days", "integer", "window length in days, 1..90", "7"),
    ("batch_id", "string", "id of the published batch; labels carry the id of the batch they label", "torus-..."),
    ("kind", "string", "snapshot, labels or traps", "snapshot"),
    ("schema_version", "string", "contract version the files follow", "1.0"),
    ("published_at", "string", "ISO UTC instant of the first publication of these bytes", "2026-01-03T00:05:00+00:00"),
    ("files", "object", "file name -> {rows, sha256 (hex), bytes}", '{"alerts.parquet": {"rows": 196, ...}}'),
    ("extra", "object", "publisher notes (row counts, generator, replaced batch id)", "{}"),
)


def _type_name(t: pa.DataType) -> str:
    return str(t)


LAYOUT = {
    "snapshot files": "snapshots/{network}/{date}/{window_days}/{file}",
    "snapshot manifest": "snapshots/{network}/{date}/{window_days}/manifest.json",
    "labels files and manifest": "labels/{network}/{date}/{window_days}/{file}",
    "announcement": "S3 object-created event of a manifest on sot.batches (labels: sot.labels), key {network}:{date}",
}

PREAMBLE = """
What a data owner publishes for one (network, date, window) and what miners and the validator
read. This document is generated from `streams/contract.py` (`python -m streams.contract >
docs/batch-contract.md`); a test fails when they differ. `riskstream sot contract --json` prints
the same in machine-readable form, `riskstream sot check DIR --network N --date D` checks an
owner's files against it.

Types are Arrow types as stored in parquet. Timestamps carry a time zone (UTC); a file with naive
timestamps is refused (`sot check --assume-utc` takes them as UTC). Columns in other types are
accepted when they cast without loss (for example int64 to int32 when every value fits); `sot
check` lists the casts it applies. Extra columns are ignored. Key columns are never null.
Ranges are what the values mean; `sot check` enforces the ones that would break scoring
(negative or non-finite flow amounts) and the ids (unique, every alert's address in features,
every cluster member an alert). Labels of a date are published at T + tau (7 days unless the
owner and validator agree otherwise), never earlier, and name the `batch_id` they label.
"""


def as_json() -> dict[str, Any]:
    """The contract as plain data (what ``riskstream sot contract --json`` prints)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "network_pattern": NETWORK_PATTERN,
        "layout": LAYOUT,
        "files": {
            f.name: {
                "folder": f.folder,
                "meaning": f.meaning,
                "unique": list(f.unique),
                "columns": [
                    {
                        "name": c.name,
                        "type": _type_name(c.type),
                        "meaning": c.meaning,
                        "unit": c.unit,
                        "range": c.range,
                        "nullable": c.nullable and not c.key,
                        "example": c.example,
                    }
                    for c in f.columns
                ],
            }
            for f in FILES
        },
        "manifest": [{"name": n, "type": t, "meaning": m, "example": e} for n, t, m, e in MANIFEST_FIELDS],
    }


def render_markdown() -> str:
    """``docs/batch-contract.md``: the contract as tables, from the same columns as the code."""
    out = [f"# Batch contract (version {SCHEMA_VERSION})", "", PREAMBLE.strip(), ""]
    out += ["## Object layout", "", "| what | key |", "|---|---|"]
    out += [f"| {what} | `{key}` |" for what, key in LAYOUT.items()]
    out += ["", f"A network is any name matching `{NETWORK_PATTERN}` (for example `torus`).", ""]
    for f in FILES:
        out += [f"## {f.name} ({f.folder})", "", f.meaning[0].upper() + f.meaning[1:] + "."]
        if f.unique:
            out += ["", "Unique: " + ", ".join(f"`{u}`" for u in f.unique) + "."]
        out += ["", "| column | type | meaning | unit | range | nullable | example |", "|---|---|---|---|---|---|---|"]
        for c in f.columns:
            nullable = "yes" if c.nullable and not c.key else "no"
            example = c.example.replace("|", "\\|")
            cells = (f"`{c.name}`", f"`{_type_name(c.type)}`", c.meaning, c.unit, c.range, nullable, f"`{example}`")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out += ["## manifest.json", "", "Written last, after every file it lists.", ""]
    out += ["| field | type | meaning | example |", "|---|---|---|---|"]
    out += [f"| `{n}` | {t} | {m} | `{e}` |" for n, t, m, e in MANIFEST_FIELDS]
    out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(render_markdown(), end="")
