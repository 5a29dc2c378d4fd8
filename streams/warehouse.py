"""The ClickHouse warehouse: every table's DDL in one place, and the sink that fills them from Kafka.

Ensemble tables keep each version of a date as a complete snapshot (``version`` is part of the
sorting key) and the ``ensemble_batches`` row of a version is its commit marker: readers take the
newest version that has a batch row, so a replayed date supersedes the old one atomically.
ReplacingMergeTree collapses redelivered rows (same key), so the sink is idempotent.

    client = connect(stack)                       # chdb://path or http://host:8123
    sink = WarehouseSink(client, "riskstream", stack.topics, AvroCodec(FileSchemaRegistry.default()))
    await run_sink(stack, sink, stop)             # consume, insert, commit after the insert
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.codec import AvroCodec
from streams.errors import CodecError, RiskstreamError
from streams.kafka import AsyncBatchConsumer, Message
from streams.settings import StackSettings
from streams.signing import SignatureError, verify_forwarded, verify_output
from streams.topics import TopicNames

log = logging.getLogger(__name__)

_DATABASE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

# Tables, in creation order. ``{db}`` is the database; every table is partitioned by month.
TABLES: dict[str, str] = {
    "ensemble_alert_scores": """
CREATE TABLE IF NOT EXISTS {db}.ensemble_alert_scores (
    network LowCardinality(String),
    processing_date Date,
    version UInt32,
    alert_id String,
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
ORDER BY (network, processing_date, version, alert_id)""",
    "ensemble_cluster_scores": """
CREATE TABLE IF NOT EXISTS {db}.ensemble_cluster_scores (
    network LowCardinality(String),
    processing_date Date,
    version UInt32,
    cluster_id String,
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
ORDER BY (network, processing_date, version, cluster_id)""",
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
    reason String DEFAULT ''
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


class WarehouseError(RiskstreamError):
    """ClickHouse cannot be reached or refused a statement."""


def check_database(name: str) -> str:
    if not _DATABASE.match(name):
        msg = f"database name {name!r} must be letters, digits and '_' (max 64), not starting with a digit"
        raise WarehouseError(msg)
    return name


def connect(stack: StackSettings) -> Any:
    """A clickhouse-connect client for ``stack.clickhouse_url`` (``chdb://path`` or ``http(s)://host:port``)."""
    import clickhouse_connect

    url = stack.clickhouse_url
    try:
        if url.startswith("chdb://"):
            return clickhouse_connect.get_client(dsn=url)
        if url.startswith(("http://", "https://")):
            return clickhouse_connect.get_client(
                dsn=url, username=stack.clickhouse_user, password=stack.clickhouse_password.get_secret_value()
            )
    except Exception as exc:  # clickhouse-connect raises its own and OS errors
        msg = f"cannot open ClickHouse at {url}: {exc}"
        raise WarehouseError(msg) from exc
    msg = f"clickhouse url must be chdb://path or http(s)://host:port, not {url!r}"
    raise WarehouseError(msg)


def create_tables(client: Any, database: str) -> None:
    """Create the database and every table that does not exist yet."""
    db = check_database(database)
    try:
        client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        for ddl in TABLES.values():
            client.command(ddl.format(db=db))
    except Exception as exc:
        msg = f"cannot create the warehouse tables in {db}: {exc}"
        raise WarehouseError(msg) from exc


# Columns the sink inserts, per table (the order of the DDL).
# ensemble.batches records written before these fields existed
_BATCH_DEFAULTS: dict[str, str] = {"status": "accepted", "reason": ""}

_COLUMNS: dict[str, tuple[str, ...]] = {
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

BatchKey = tuple[str, dt.date, int]  # network, processing_date, version


@dataclass(slots=True)
class SinkStats:
    """What the sink has done since it started (exported by the gateway's /metrics)."""

    rows: Counter[str] = field(default_factory=Counter)  # table -> rows inserted
    records: Counter[str] = field(default_factory=Counter)  # record name -> records consumed
    undecodable: int = 0
    rejected: int = 0  # decoded, but not a record this topic carries or not consistent
    unsigned: int = 0  # not signed by the validator: never stored
    inserts: int = 0
    commits: int = 0
    insert_failures: int = 0
    forced_batches: int = 0  # batch markers written before all their rows arrived (timeout)
    last_insert_at: float = 0.0  # unix seconds
    lag_seconds: float = 0.0  # now - produce time of the newest record in the last insert
    generation: int = 0  # increments after every insert: readers drop cached answers


class _Columns:
    """Column-oriented rows for one table."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.data: dict[str, list[Any]] = {n: [] for n in names}

    def __len__(self) -> int:
        return len(self.data[self.names[0]])

    def add(self, **values: Any) -> None:
        for name in self.names:
            self.data[name].append(values[name])

    def extend(self, count: int, arrays: dict[str, Sequence[Any]], scalars: dict[str, Any]) -> None:
        for name in self.names:
            if name in arrays:
                self.data[name].extend(arrays[name])
            else:
                self.data[name].extend([scalars[name]] * count)

    def columns(self) -> list[list[Any]]:
        return [self.data[n] for n in self.names]


class WarehouseSink:
    """Decodes consumed records and inserts them, one insert per table per batch of messages.

    sink = WarehouseSink(client, "riskstream", TopicNames(), codec, validator_key=public_hex)
    safe_to_commit = sink.write(messages)      # raises WarehouseError if ClickHouse fails

    Only what the validator signed is stored: its ensemble, batch and result records, and the
    miner records its bridge accepted (read from the validator's inbox, where each carries the
    bridge's signature over its source position) — never a miner topic directly, where anyone
    may write under a miner's name. ``validator_key`` is the hex public key, or a function that
    returns it once known (the local validator writes it when it first starts).
    """

    def __init__(
        self,
        client: Any,
        database: str,
        topics: TopicNames,
        codec: AvroCodec,
        *,
        validator_key: str | Callable[[], str | None],
        marker_timeout_s: float = 30.0,
    ) -> None:
        self._validator_key = validator_key
        self.client = client
        self.database = check_database(database)
        self.topics = topics
        self.codec = codec
        self.marker_timeout_s = marker_timeout_s
        self.stats = SinkStats()
        # batch markers whose alert/cluster rows have not all arrived yet: key -> (record, first seen)
        self._pending: dict[BatchKey, tuple[dict[str, Any], float]] = {}
        self._expected = {
            topics.ensemble_alerts: "riskstream.EnsembleAlertScore",
            topics.ensemble_clusters: "riskstream.EnsembleClusterScore",
            topics.ensemble_batches: "riskstream.EnsembleBatch",
            topics.validator_results: "riskstream.ValidationResult",
        }

    @property
    def pending(self) -> int:
        return len(self._pending)

    def pending_markers(self) -> list[BatchKey]:
        """The batch markers held back until their rows arrive (for health pages)."""
        return sorted(self._pending)

    def subscription_pattern(self) -> str:
        """One regex for every topic the sink reads: the validator's outputs and its inbox of miner records."""
        fixed = "|".join(re.escape(t) for t in [*self._expected, self.topics.validator_inbox])
        return f"^(?:{fixed})$"

    def validator_key(self) -> str:
        key = self._validator_key if isinstance(self._validator_key, str) else self._validator_key()
        if not key:
            msg = "the validator's public key is not known yet (it is written when the validator first starts)"
            raise WarehouseError(msg)
        return key

    def _source(self, message: Message, public: str) -> str | None:
        """The topic a record is stored as coming from, if the validator signed it; else None."""
        try:
            if message.topic == self.topics.validator_inbox:
                position = verify_forwarded(public, message.key, message.value, message.headers)
                return position.rsplit(":", 2)[0]
            verify_output(public, self.topics, message.topic, message.key, message.value, message.headers)
        except SignatureError as exc:
            self.stats.unsigned += 1
            if self.stats.unsigned <= 10 or self.stats.unsigned % 1000 == 0:
                log.warning(
                    "unsigned record %s[%d]@%d not stored (%d so far): %s",
                    message.topic, message.partition, message.offset, self.stats.unsigned, exc,
                )  # fmt: skip
            return None
        return message.topic

    def ensure_tables(self) -> None:
        create_tables(self.client, self.database)

    # -- decoding -----------------------------------------------------------------------------

    def _rows_of(
        self, messages: Sequence[Message], now: dt.datetime
    ) -> tuple[dict[str, _Columns], list[dict[str, Any]]]:
        tables = {name: _Columns(cols) for name, cols in _COLUMNS.items() if name != "miner_weights"}
        markers: list[dict[str, Any]] = []
        public = self.validator_key() if messages else ""
        for message in messages:
            source = self._source(message, public)
            if source is None:
                continue
            try:
                decoded = self.codec.decode(message.value)
            except CodecError as exc:
                self.stats.undecodable += 1
                if self.stats.undecodable <= 10 or self.stats.undecodable % 1000 == 0:
                    log.warning(
                        "undecodable record %s[%d]@%d (%d so far): %s",
                        message.topic, message.partition, message.offset, self.stats.undecodable, exc,
                    )  # fmt: skip
                continue
            name, record = decoded.name, decoded.record
            expected = self._expected.get(source)
            topic_miner = self.topics.miner_id_of(source) if expected is None else None
            miner_topic = topic_miner is not None
            try:
                if expected is not None and name != expected:
                    msg = f"{name} on {message.topic}, expected {expected}"
                    raise ValueError(msg)
                if miner_topic and record.get("miner_id") != topic_miner:
                    msg = f"miner_id {record.get('miner_id')!r} on the topic of miner {topic_miner!r}"
                    raise ValueError(msg)
                self._add(name, record, tables, markers, now, miner_topic)
            except (ValueError, KeyError, TypeError) as exc:
                self.stats.rejected += 1
                log.warning("rejected record %s[%d]@%d: %s", message.topic, message.partition, message.offset, exc)
                continue
            self.stats.records[name] += 1
        return tables, markers

    def _add(
        self,
        name: str,
        r: dict[str, Any],
        tables: dict[str, _Columns],
        markers: list[dict[str, Any]],
        now: dt.datetime,
        miner_topic: bool,
    ) -> None:
        if name in ("riskstream.EnsembleAlertScore", "riskstream.EnsembleClusterScore"):
            alert = name == "riskstream.EnsembleAlertScore"
            table = tables["ensemble_alert_scores" if alert else "ensemble_cluster_scores"]
            id_column = "alert_id" if alert else "cluster_id"
            table.add(
                network=r["network"],
                processing_date=r["processing_date"],
                version=_unsigned(r["version"], "version"),
                **{id_column: r[id_column]},
                ensemble_score=r["ensemble_score"],
                confidence=r["confidence"],
                miner_count=_unsigned(r["miner_count"], "miner_count"),
                miner_agreement=r["miner_agreement"],
                score_std=r["score_std"],
                rank=_unsigned(r["rank"], "rank"),
                top_contributors=[(c["miner_id"], c["weight"], c["score"]) for c in r["top_contributors"]],
                ingested_at=now,
            )
        elif name == "riskstream.EnsembleBatch":
            _unsigned(r["version"], "version")
            markers.append(r)
        elif name == "riskstream.ValidationResult":
            tables["validation_results"].add(
                **{k: r[k] for k in _COLUMNS["validation_results"] if k != "version"},
                version=_unsigned(r["version"], "version"),
            )
        elif name == "riskstream.AlertScoreBatch" and miner_topic:
            count = len(r["alert_ids"])
            if len(r["scores"]) != count or len(r["ranks"]) != count:
                lengths = f"{count} ids, {len(r['scores'])} scores, {len(r['ranks'])} ranks"
                msg = f"alert chunk arrays differ in length: {lengths}"
                raise ValueError(msg)
            if any(rank < 0 for rank in r["ranks"]):
                msg = "alert chunk has negative ranks"
                raise ValueError(msg)
            tables["miner_submissions"].extend(
                count,
                {"entity_id": r["alert_ids"], "score": r["scores"], "rank": r["ranks"]},
                {**r, "entity_type": "alert"},
            )
        elif name == "riskstream.ClusterScoreBatch" and miner_topic:
            count = len(r["cluster_ids"])
            if len(r["scores"]) != count:
                msg = f"cluster chunk arrays differ in length: {count} ids, {len(r['scores'])} scores"
                raise ValueError(msg)
            tables["miner_submissions"].extend(
                count, {"entity_id": r["cluster_ids"], "score": r["scores"]}, {**r, "entity_type": "cluster", "rank": 0}
            )
        elif name == "riskstream.SubmissionComplete" and miner_topic:
            for key in ("window_days", "alert_count", "cluster_count", "alert_chunks", "cluster_chunks"):
                _unsigned(r[key], key)
            tables["submission_completions"].add(**{k: r[k] for k in _COLUMNS["submission_completions"]})
        else:
            msg = f"{name} is not a record the warehouse stores (from this topic)"
            raise ValueError(msg)

    # -- writing ------------------------------------------------------------------------------

    def _insert(self, table: str, columns: _Columns) -> None:
        if not len(columns):
            return
        try:
            self.client.insert(
                f"{self.database}.{table}", columns.columns(), column_names=list(columns.names), column_oriented=True
            )
        except Exception as exc:  # clickhouse-connect / chDB errors of many kinds
            self.stats.insert_failures += 1
            msg = f"insert into {self.database}.{table} failed: {exc}"
            raise WarehouseError(msg) from exc
        self.stats.rows[table] += len(columns)
        self.stats.inserts += 1

    def _rows_present(self, key: BatchKey) -> tuple[int, int]:
        network, date, version = key
        params = {"n": network, "d": date, "v": version}
        where = "network = {n:String} AND processing_date = {d:Date} AND version = {v:UInt32}"
        try:
            # the database name is checked by check_database; values are bound parameters
            sql = (
                f"SELECT (SELECT uniqExact(alert_id) FROM {self.database}.ensemble_alert_scores WHERE {where}),"  # noqa: S608
                f" (SELECT uniqExact(cluster_id) FROM {self.database}.ensemble_cluster_scores WHERE {where})"
            )
            result = self.client.query(sql, parameters=params)
        except Exception as exc:
            msg = f"cannot count the rows of {key}: {exc}"
            raise WarehouseError(msg) from exc
        alerts, clusters = result.result_rows[0]
        return int(alerts), int(clusters)

    def _flush_markers(self, now: dt.datetime) -> None:
        """Write the batch markers whose rows are all present (or that waited longer than the timeout)."""
        ready = _Columns(_COLUMNS["ensemble_batches"])
        weights = _Columns(_COLUMNS["miner_weights"])
        done: list[BatchKey] = []
        for key, (r, first_seen) in self._pending.items():
            alerts, clusters = self._rows_present(key)
            if alerts < r["alert_count"] or clusters < r["cluster_count"]:
                if time.monotonic() - first_seen < self.marker_timeout_s:
                    continue
                self.stats.forced_batches += 1
                log.warning(
                    "batch %s v%d marked complete with %d/%d alerts and %d/%d clusters after %.0fs",
                    key[1], key[2], alerts, r["alert_count"], clusters, r["cluster_count"], self.marker_timeout_s,
                )  # fmt: skip
            ready.add(
                **{
                    k: r.get(k, _BATCH_DEFAULTS.get(k))
                    for k in _COLUMNS["ensemble_batches"]
                    if k not in ("miners", "ingested_at")
                },
                miners=[(m["miner_id"], m["weight"], m["immediate_score"], m["completed"]) for m in r["miners"]],
                ingested_at=now,
            )
            for m in r["miners"]:
                weights.add(network=r["network"], processing_date=r["processing_date"], version=r["version"], **m)
            done.append(key)
        self._insert("miner_weights", weights)
        self._insert("ensemble_batches", ready)
        for key in done:
            del self._pending[key]
        if done:  # the served version moved (also after a marker timeout with no new record): drop cached answers
            self.stats.generation += 1

    def write(self, messages: Sequence[Message]) -> bool:
        """Insert what ``messages`` carry; True when every consumed record is stored (safe to commit).

        A batch marker is held back until its version's rows are in (they are produced before it but
        may sit in other partitions); while one is held, the caller must not commit.
        """
        now = dt.datetime.now(dt.UTC)
        tables, markers = self._rows_of(messages, now)
        for table, columns in tables.items():
            self._insert(table, columns)
        for r in markers:
            key = (r["network"], r["processing_date"], int(r["version"]))
            self._pending.setdefault(key, (r, time.monotonic()))
        if self._pending:
            self._flush_markers(now)
        if messages:
            newest = max(m.timestamp_ms for m in messages)
            self.stats.lag_seconds = max(0.0, time.time() - newest / 1000)
            self.stats.last_insert_at = time.time()
            self.stats.generation += 1
        return not self._pending


def _unsigned(value: int, name: str) -> int:
    if value < 0:
        msg = f"{name} must not be negative: {value}"
        raise ValueError(msg)
    return value


async def run_sink(
    stack: StackSettings,
    sink: WarehouseSink,
    stop: asyncio.Event,
    *,
    group_id: str = "riskstream-warehouse",
    max_records: int = 5_000,
    retry_max_s: float = 30.0,
) -> None:
    """Consume every topic the warehouse stores until ``stop`` is set; commit only after the inserts."""
    await asyncio.to_thread(sink.ensure_tables)
    consumer = AsyncBatchConsumer(
        stack.bootstrap_servers,
        group_id,
        pattern=sink.subscription_pattern(),
        session_timeout_ms=stack.session_timeout_ms,
        max_records=max_records,
        timeout_ms=200,
    )
    async with consumer:
        log.info("warehouse sink consuming %s into %s", sink.subscription_pattern(), sink.database)
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                # getmany can wait long (a rebalance waits for the assignment): race it against stop
                polled = asyncio.ensure_future(consumer.getmany())
                await asyncio.wait({polled, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not polled.done():
                    polled.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await polled
                    break
                await _insert_and_commit(consumer, sink, polled.result(), stop, retry_max_s)
        finally:
            stopped.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopped


async def _insert_and_commit(
    consumer: AsyncBatchConsumer, sink: WarehouseSink, messages: list[Message], stop: asyncio.Event, retry_max_s: float
) -> None:
    """Insert ``messages`` (retrying while ClickHouse fails), then commit if nothing is held back."""
    if not messages and not sink.pending:
        return
    delay = 0.5
    while True:
        try:
            safe = await asyncio.to_thread(sink.write, messages)
            break
        except WarehouseError as exc:  # keep the messages and retry: nothing is committed or lost
            log.error("warehouse insert failed, retrying in %.1fs: %s", delay, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return
            delay = min(delay * 2, retry_max_s)
    if safe:
        await consumer.commit()
        sink.stats.commits += 1
