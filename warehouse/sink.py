"""The warehouse sink: decodes consumed records, buffers them column-wise and inserts them at flush.

Only what the validator signed is stored: its ensemble, batch and result records, and the miner
records its bridge accepted (read from the validator's inbox, where each carries the bridge's
signature over its source position) — never a miner topic directly, where anyone may write
under a miner's name.

Modelled on a batching sink: ``add_all`` takes one poll's messages (verifies them together,
then decodes and buffers each), ``flush`` inserts every buffered table with one statement each
and writes the batch markers whose rows are all present; the runner commits offsets only after
a flush that says so. A record that cannot be stored becomes a ``DeadLetter`` (taken with
``take_dead_letters``), never a crash and never a silent drop.

    sink = WarehouseSink(client, "riskstream", TopicNames(), codec, validator_key=public_hex)
    sink.add_all(messages)
    safe_to_commit = sink.flush()              # raises WarehouseError if ClickHouse fails
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Any

from streams.codec import AvroCodec
from streams.deadletter import DeadLetter
from streams.errors import CodecError, WarehouseError
from streams.kafka import Message
from streams.records import ENSEMBLE_ALERT_SCORE, ENSEMBLE_BATCH, ENSEMBLE_CLUSTER_SCORE, VALIDATION_RESULT
from streams.signing import SignatureError, SignedClaim, verify_from_validator
from streams.topics import TopicNames
from streams.warehouse_schema import check_database, create_tables
from warehouse.metrics import SinkMetrics
from warehouse.rows import Columns, TableRows, marker_rows, unsigned

log = logging.getLogger(__name__)

BatchKey = tuple[str, dt.date, int]  # network, processing_date, version
VERIFY_PART = 500  # records whose signatures are checked in one call (one thread's share of a poll)


class WarehouseSink:
    """Decodes consumed records and inserts them, one insert per table per flush.

    sink = WarehouseSink(client, "riskstream", TopicNames(), codec, validator_key=public_hex)
    safe_to_commit = sink.write(messages)      # add every message, then flush

    ``validator_key`` is the validator's hex public key, or a function that returns it once known
    (the local validator writes it when it first starts).
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
        metrics: SinkMetrics | None = None,
        verify_threads: int | None = None,
    ) -> None:
        self._validator_key = validator_key
        self._public: str | None = None
        self.client = client
        self.database = check_database(database)
        self.topics = topics
        self.codec = codec
        self.marker_timeout_s = marker_timeout_s
        # signatures are checked on this many threads (libsodium releases the GIL)
        self.verify_threads = verify_threads if verify_threads is not None else min(4, os.cpu_count() or 1)
        self.metrics = metrics or SinkMetrics()
        self._rows = TableRows()
        self._markers: list[Mapping[str, Any]] = []
        self._dead: list[DeadLetter] = []
        self._newest_ms = 0
        self._added = 0
        # batch markers whose alert/cluster rows have not all arrived yet: key -> (record, first seen)
        self._pending: dict[BatchKey, tuple[Mapping[str, Any], float]] = {}
        self._expected = {
            topics.ensemble_alerts: ENSEMBLE_ALERT_SCORE,
            topics.ensemble_clusters: ENSEMBLE_CLUSTER_SCORE,
            topics.ensemble_batches: ENSEMBLE_BATCH,
            topics.validator_results: VALIDATION_RESULT,
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
        """The validator's public key; ``WarehouseError`` while it is not known (nothing is added then)."""
        if self._public is None:
            key = self._validator_key if isinstance(self._validator_key, str) else self._validator_key()
            if not key:
                msg = "the validator's public key is not known yet (it is written when the validator first starts)"
                raise WarehouseError(msg)
            self._public = key
        return self._public

    def ensure_tables(self) -> None:
        create_tables(self.client, self.database)

    # -- add ----------------------------------------------------------------------------------

    def add_all(self, messages: Sequence[Message]) -> None:
        """Verify, decode and buffer every message (or keep it as a dead letter).

        ``WarehouseError`` before the first if the validator's key is not known. The signatures are
        checked a part of the poll at a time, on ``verify_threads`` threads; each record is then
        stored or dead-lettered on its own, in the order consumed.
        """
        public = self.validator_key()
        records = [(m.topic, m.key, m.value, m.headers) for m in messages]
        parts = [records[start : start + VERIFY_PART] for start in range(0, len(records), VERIFY_PART)]

        def check(part: Sequence[tuple[str, bytes | None, bytes | None, Any]]) -> list[SignedClaim | SignatureError]:
            return verify_from_validator(public, self.topics, part)

        if self.verify_threads > 1 and len(parts) > 1:
            # the threads check the next parts while this one decodes and buffers the checked ones
            with ThreadPoolExecutor(self.verify_threads, thread_name_prefix="verifying") as pool:
                self._add_checked(messages, chain.from_iterable(pool.map(check, parts)))
        else:
            self._add_checked(messages, chain.from_iterable(map(check, parts)))

    def _add_checked(self, messages: Sequence[Message], claims: Iterable[SignedClaim | SignatureError]) -> None:
        stored: Counter[str] = Counter()
        now, inbox = self._now(), self.topics.validator_inbox
        for message, claim in zip(messages, claims, strict=True):
            if isinstance(claim, SignatureError):
                self._dead_letter(message, f"unsigned: {claim}", "unsigned")
                continue
            source = message.topic if message.topic != inbox else claim.batch_id.rsplit(":", 2)[0]
            name = self._add(message, source, now)
            if name is not None:
                stored[name] += 1
        for topic, count in Counter(m.topic for m in messages).items():
            self.metrics.records_in.labels(topic).inc(count)
        for name, count in stored.items():
            self.metrics.records.labels(name).inc(count)
        if messages:
            self._added += len(messages)
            self._newest_ms = max(self._newest_ms, max(m.timestamp_ms for m in messages))

    def _add(self, message: Message, source: str, now: dt.datetime) -> str | None:
        """Decode and buffer one verified record; its record name, or None if it was dead-lettered."""
        try:
            decoded = self.codec.decode(message.value)
        except CodecError as exc:
            self._dead_letter(message, f"undecodable: {exc}", "undecodable")
            return None
        name, record = decoded.name, decoded.record
        expected = self._expected.get(source)
        topic_miner = self.topics.miner_id_of(source) if expected is None else None
        try:
            if expected is None and topic_miner is None:
                msg = f"forwarded from {source}, which is not a miner topic"
                raise ValueError(msg)
            if expected is not None and name != expected:
                msg = f"{name} on {source}, expected {expected}"
                raise ValueError(msg)
            if topic_miner is not None and record.get("miner_id") != topic_miner:
                msg = f"miner_id {record.get('miner_id')!r} on the topic of miner {topic_miner!r}"
                raise ValueError(msg)
            marker = self._rows.add(name, record, now, miner_topic=topic_miner is not None)
        except (ValueError, KeyError, TypeError) as exc:
            self._dead_letter(message, f"rejected: {exc}", "rejected")
            return None
        if marker is not None:
            self._markers.append(marker)
        return name

    def _dead_letter(self, message: Message, reason: str, kind: str) -> None:
        self._dead.append(DeadLetter.of(message, reason))
        count = self.metrics.bad_records.labels(kind)
        count.inc()
        seen = len(self._dead)
        if seen <= 10 or seen % 1000 == 0:
            log.warning("%s record %s[%d]@%d: %s", kind, message.topic, message.partition, message.offset, reason)

    def take_dead_letters(self) -> list[DeadLetter]:
        """The dead letters since the last call: the runner produces them before it commits."""
        dead, self._dead = self._dead, []
        return dead

    def keep_dead_letters(self, dead: Sequence[DeadLetter]) -> None:
        """Give back dead letters that could not be produced: the next ``take_dead_letters`` returns them first."""
        self._dead[:0] = dead

    # -- flush --------------------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def _insert(self, table: str, columns: Columns) -> None:
        if not len(columns):
            return
        started = time.perf_counter()
        try:
            self.client.insert(
                f"{self.database}.{table}", columns.columns(), column_names=list(columns.names), column_oriented=True
            )
        except Exception as exc:  # clickhouse-connect / chDB errors of many kinds
            self.metrics.insert_failures.inc()
            msg = f"insert into {self.database}.{table} failed: {exc}"
            raise WarehouseError(msg) from exc
        self.metrics.insert_seconds.observe(time.perf_counter() - started)
        self.metrics.rows.labels(table).inc(len(columns))

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
        ready: list[Mapping[str, Any]] = []
        done: list[BatchKey] = []
        for key, (r, first_seen) in self._pending.items():
            alerts, clusters = self._rows_present(key)
            if alerts < r["alert_count"] or clusters < r["cluster_count"]:
                if time.monotonic() - first_seen < self.marker_timeout_s:
                    continue
                self.metrics.forced_batches.inc()
                log.warning(
                    "batch %s v%d marked complete with %d/%d alerts and %d/%d clusters after %.0fs",
                    key[1], key[2], alerts, r["alert_count"], clusters, r["cluster_count"], self.marker_timeout_s,
                )  # fmt: skip
            ready.append(r)
            done.append(key)
        batches, weights = marker_rows(ready, now)
        self._insert("miner_weights", weights)
        self._insert("ensemble_batches", batches)
        for key in done:
            del self._pending[key]

    def flush(self) -> bool:
        """Insert what was added since the last flush; True when every added record is stored (safe to commit).

        A batch marker is held back until its version's rows are in (they are produced before it but
        may sit in other partitions); while one is held, the caller must not commit. If an insert
        fails, the buffered rows are kept and the next flush tries them again.
        """
        now = self._now()
        for table, columns in self._rows.tables():
            self._insert(table, columns)
        self._rows = TableRows()
        for r in self._markers:
            key = (r["network"], r["processing_date"], unsigned(int(r["version"]), "version"))
            self._pending.setdefault(key, (r, time.monotonic()))
        self._markers = []
        if self._pending:
            self._flush_markers(now)
        if self._added:
            self.metrics.lag_seconds.set(max(0.0, time.time() - self._newest_ms / 1000))
            self.metrics.last_flush.set_to_current_time()
            self._added = 0
        self.metrics.pending_batches.set(len(self._pending))
        return not self._pending

    def write(self, messages: Sequence[Message]) -> bool:
        """``add_all``, then ``flush``; True when safe to commit."""
        self.add_all(messages)
        return self.flush()
