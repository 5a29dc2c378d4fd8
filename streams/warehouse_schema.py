"""The warehouse contract: every ClickHouse table's DDL and columns, and how writers and readers connect.

The sink (``riskstream warehouse sink``) creates and fills these tables; the gateway only reads
them. Ensemble tables keep each version of a date as a complete snapshot (``version`` is part of
the sorting key) and the ``ensemble_batches`` row of a version is its commit marker: readers take
the newest version that has a batch row, so a replayed date supersedes the old one atomically.
ReplacingMergeTree collapses redelivered rows (same key), so the sink is idempotent.

Where: ``clickhouse_url`` is a ClickHouse server (``http(s)://host:8123``; the sink and any
number of gateways connect to it) or, in the embedded default, a chDB path (``chdb://dir``)
that only one process may open: the sink owns it and serves reads over the ClickHouse HTTP
interface at ``warehouse_reads_url``, where the gateways connect.

    client = connect(stack)                  # the sink: chdb://path or http://host:8123
    reader = connect(stack, reads=True)      # a gateway: http://host:8123 or the sink's read endpoint
"""

from __future__ import annotations

import re
from typing import Any

from streams.errors import WarehouseError
from streams.settings import StackSettings

# ensemble.batches records written before these fields existed
BATCH_DEFAULTS: dict[str, Any] = {"status": "accepted", "reason": "", "miner_keys": {}}

# Columns added after a table's first release: ``create_tables`` adds them to tables created before.
ADDED_COLUMNS: dict[str, tuple[str, ...]] = {
    "ensemble_batches": (
        "status LowCardinality(String) DEFAULT 'accepted'",
        "reason String DEFAULT ''",
        "miner_keys Map(String, String) DEFAULT map()",
    ),
}

__all__ = [
    "ADDED_COLUMNS", "BATCH_DEFAULTS", "COLUMNS", "TABLES",
    "check_database", "connect", "create_tables", "embedded", "reads_url",
]  # fmt: skip

_DATABASE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _ensemble_scores(entity: str) -> str:
    """The alert and the cluster score tables differ only in the id column."""
    return f"""
CREATE TABLE IF NOT EXISTS {{db}}.ensemble_{entity}_scores (
    network LowCardinality(String),
    processing_date Date,
    version UInt32,
    {entity}_id String,
    ensemble_score Float64,
    confidence Float64,
    miner_count UInt32,
    miner_agreement Float64,
    score_std Float64,
    rank UInt32,
    top_contributors Array(Tuple(miner_id String, weight Float64, score Float64)),
    ingested_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(processing_date)
ORDER BY (network, processing_date, version, {entity}_id)"""


# Tables, in creation order. ``{db}`` is the database; every table is partitioned by month.
TABLES: dict[str, str] = {
    "ensemble_alert_scores": _ensemble_scores("alert"),
    "ensemble_cluster_scores": _ensemble_scores("cluster"),
    "ensemble_batches": """
CREATE TABLE IF NOT EXISTS {db}.ensemble_batches (
    network LowCardinality(String),
    processing_date Date,
    version UInt32,
    window_days UInt16,
    batch_id String,
    aggregation_method LowCardinality(String),
    trigger LowCardinality(String),
    alert_count UInt32,
    cluster_count UInt32,
    expected_miners Array(String),
    miners Array(Tuple(miner_id String, weight Float64, immediate_score Float64, completed Bool)),
    aggregated_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC'),
    status LowCardinality(String) DEFAULT 'accepted',
    reason String DEFAULT '',
    miner_keys Map(String, String) DEFAULT map()
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(processing_date)
ORDER BY (network, processing_date, version)""",
    "miner_weights": """
CREATE TABLE IF NOT EXISTS {db}.miner_weights (
    network LowCardinality(String),
    processing_date Date,
    miner_id String,
    version UInt32,
    weight Float64,
    immediate_score Float64,
    completed Bool
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(processing_date)
ORDER BY (network, miner_id, processing_date)""",
    "miner_submissions": """
CREATE TABLE IF NOT EXISTS {db}.miner_submissions (
    network LowCardinality(String),
    processing_date Date,
    miner_id String,
    entity_type Enum8('alert' = 1, 'cluster' = 2),
    entity_id String,
    score Float64,
    rank UInt32,
    model_version String,
    batch_id String,
    latency_ms Float64,
    produced_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(produced_at)
PARTITION BY toYYYYMM(processing_date)
ORDER BY (network, processing_date, miner_id, entity_type, entity_id)""",
    "submission_completions": """
CREATE TABLE IF NOT EXISTS {db}.submission_completions (
    network LowCardinality(String),
    processing_date Date,
    miner_id String,
    window_days UInt16,
    batch_id String,
    alert_count UInt32,
    cluster_count UInt32,
    alert_chunks UInt32,
    cluster_chunks UInt32,
    model_versions Map(String, String),
    checksum String,
    latency_ms Float64,
    produced_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(produced_at)
PARTITION BY toYYYYMM(processing_date)
ORDER BY (network, processing_date, miner_id)""",
    "validation_results": """
CREATE TABLE IF NOT EXISTS {db}.validation_results (
    network LowCardinality(String),
    processing_date Date,
    miner_id String,
    stage LowCardinality(String),
    version UInt32,
    integrity_score Float64,
    behaviour_score Float64,
    ground_truth_score Nullable(Float64),
    immediate_score Float64,
    final_score Nullable(Float64),
    weight Float64,
    passed_integrity Bool,
    reasons Array(String),
    metrics Map(String, Float64)
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(processing_date)
ORDER BY (network, processing_date, miner_id, stage)""",
    # Per miner and date: the newest immediate and ground-truth figures side by side.
    "miner_performance": """
CREATE VIEW IF NOT EXISTS {db}.miner_performance AS
SELECT
    network, processing_date, miner_id,
    max(version) AS result_version,
    anyIf(immediate_score, stage = 'immediate') AS immediate_score,
    anyIf(integrity_score, stage = 'immediate') AS integrity_score,
    anyIf(behaviour_score, stage = 'immediate') AS behaviour_score,
    anyIf(ground_truth_score, stage = 'ground_truth') AS ground_truth_score,
    anyIf(final_score, stage = 'ground_truth') AS final_score,
    argMax(weight, version) AS weight,
    min(passed_integrity) AS passed_integrity,
    countIf(stage = 'ground_truth') > 0 AS has_ground_truth,
    anyIf(metrics, stage = 'ground_truth') AS ground_truth_metrics
FROM {db}.validation_results FINAL
GROUP BY network, processing_date, miner_id""",
}


# Columns of each table in the order of its DDL: what the sink inserts and what readers may select.
COLUMNS: dict[str, tuple[str, ...]] = {
    "ensemble_alert_scores": (
        "network", "processing_date", "version", "alert_id", "ensemble_score", "confidence", "miner_count",
        "miner_agreement", "score_std", "rank", "top_contributors", "ingested_at",
    ),
    "ensemble_cluster_scores": (
        "network", "processing_date", "version", "cluster_id", "ensemble_score", "confidence", "miner_count",
        "miner_agreement", "score_std", "rank", "top_contributors", "ingested_at",
    ),
    "ensemble_batches": (
        "network", "processing_date", "version", "window_days", "batch_id", "aggregation_method", "trigger",
        "alert_count", "cluster_count", "expected_miners", "miners", "aggregated_at", "ingested_at", "status", "reason",
        "miner_keys",
    ),
    "miner_weights": (
        "network", "processing_date", "miner_id", "version", "weight", "immediate_score", "completed",
    ),
    "miner_submissions": (
        "network", "processing_date", "miner_id", "entity_type", "entity_id", "score", "rank", "model_version",
        "batch_id", "latency_ms", "produced_at",
    ),
    "submission_completions": (
        "network", "processing_date", "miner_id", "window_days", "batch_id", "alert_count", "cluster_count",
        "alert_chunks", "cluster_chunks", "model_versions", "checksum", "latency_ms", "produced_at",
    ),
    "validation_results": (
        "network", "processing_date", "miner_id", "stage", "version", "integrity_score", "behaviour_score",
        "ground_truth_score", "immediate_score", "final_score", "weight", "passed_integrity", "reasons", "metrics",
    ),
}  # fmt: skip


def check_database(name: str) -> str:
    if not _DATABASE.match(name):
        msg = f"database name {name!r} must be letters, digits and '_' (max 64), not starting with a digit"
        raise WarehouseError(msg)
    return name


def embedded(stack: StackSettings) -> bool:
    """True when the warehouse is a chDB path (one process, the sink, may open it)."""
    return stack.clickhouse_url.startswith("chdb://")


def reads_url(stack: StackSettings) -> str:
    """Where readers connect: the ClickHouse server itself, or the sink's read endpoint over chDB."""
    return stack.warehouse_reads_url if embedded(stack) else stack.clickhouse_url


def connect(stack: StackSettings, *, reads: bool = False) -> Any:
    """A clickhouse-connect client: the writer's ``clickhouse_url``, or with ``reads`` the readers' URL."""
    import clickhouse_connect

    url = reads_url(stack) if reads else stack.clickhouse_url
    try:
        if url.startswith("chdb://"):
            return clickhouse_connect.get_client(dsn=url)
        if url.startswith(("http://", "https://")):
            # no session: a server refuses concurrent queries in one session, and readers query in parallel
            return clickhouse_connect.get_client(
                dsn=url,
                username=stack.clickhouse_user,
                password=stack.clickhouse_password.get_secret_value(),
                autogenerate_session_id=False,
            )
    except Exception as exc:  # clickhouse-connect raises its own and OS errors
        msg = f"cannot open ClickHouse at {url}: {exc}"
        raise WarehouseError(msg) from exc
    msg = f"clickhouse url must be chdb://path or http(s)://host:port, not {url!r}"
    raise WarehouseError(msg)


def create_tables(client: Any, database: str) -> None:
    """Create the database and every table that does not exist yet; add columns newer than a table."""
    db = check_database(database)
    try:
        client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        for ddl in TABLES.values():
            client.command(ddl.format(db=db))
        for table, columns in ADDED_COLUMNS.items():
            for column in columns:
                client.command(f"ALTER TABLE {db}.{table} ADD COLUMN IF NOT EXISTS {column}")
    except Exception as exc:
        msg = f"cannot create the warehouse tables in {db}: {exc}"
        raise WarehouseError(msg) from exc
