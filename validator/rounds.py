"""Rounds: the per-(date, network) life cycle, from the batch event to the ensemble and tier 3.

A round opens on a batch event, gathers miner records as they stream in (counting integrity
facts on arrival), and closes when every expected miner has completed or at the deadline;
closing emits the ensemble, the batch record and the immediate verdicts. Labels then give tier
3 and update the miners' score history. A second batch event for an emitted date, or a replay
command, opens a new round whose ensemble is version + 1. All state lives in the tables, so a
restarted worker carries on where it stopped.

    rounds = Rounds(tables, settings, codec, store, producer)
    rounds.open_batch(event_bytes, position)          # sot.batches
    rounds.ingest(inbox_records)                      # validator.inbox, one call per batch
    rounds.check(now_ms)                              # timer: deadlines, late versions, labels
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from streams.batch import MANIFEST, Manifest, batch_key
from streams.codec import AvroCodec, Decoded
from streams.errors import CodecError, EventError
from streams.kafka import Producer
from streams.objectstore import ObjectCreated, ObjectStore, parse_object_created
from validator.batches import BatchContents, batch_manifest_key, load_batch, load_labels, read_manifest
from validator.bridge import InboxRecord
from validator.encoding import EnsembleEncoder
from validator.errors import BatchLoadError, ReplayError
from validator.outcome import (
    ENSEMBLE_ID,
    MinerFacts,
    RoundInputs,
    RoundOutcome,
    batch_record,
    evaluate_round,
    ground_truth_results,
    immediate_results,
    judge_ground_truth,
)
from validator.registry import miners_to_wait_for
from validator.settings import ValidatorSettings
from validator.submissions import ALERT_RECORD, CLUSTER_RECORD, COMPLETE_RECORD, collect_submissions
from validator.tables import (
    ALERT,
    ANY_NETWORK,
    CLUSTER,
    SEP,
    StoredChunk,
    StoredEnsemble,
    ValidatorTables,
    chunk_id,
    chunk_key,
    date_of_key,
    ensemble_key,
    ids_digest,
    items_with_prefix,
    keys_with_prefix,
    miner_key,
    parse_round_key,
    round_key,
)

log = logging.getLogger(__name__)
HISTORY_KEEP = 60  # final scores kept per miner


def _millis(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def _as_millis(value: Any) -> int:
    return _millis(value) if isinstance(value, dt.datetime) else int(value)


def _key_date(key: bytes | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat((key or b"").decode().split(":", 1)[0])
    except (ValueError, UnicodeDecodeError):
        return None


class Rounds:
    """Drives every round; the Faust agents and timer call it, tests call it with dict tables."""

    def __init__(
        self,
        tables: ValidatorTables,
        settings: ValidatorSettings,
        codec: AvroCodec,
        store: ObjectStore,
        producer: Producer,
        private_store: ObjectStore | None = None,
    ) -> None:
        self.tables = tables
        self.settings = settings
        self.codec = codec
        self.store = store
        self.private_store = private_store or store  # the traps: never where miners can read
        self.producer = producer
        self.topics = settings.stack.topics
        self._alert_encoder = EnsembleEncoder.for_record(codec, "riskstream.EnsembleAlertScore", "alert_id")
        self._cluster_encoder = EnsembleEncoder.for_record(codec, "riskstream.EnsembleClusterScore", "cluster_id")
        self._contents: dict[str, BatchContents] = {}
        # chunks decoded on arrival, kept until their round is emitted: chunk key -> (position, record)
        self._decoded: dict[str, tuple[str, Decoded]] = {}
        self.dead_letters = 0

    def _manifests(
        self, data: bytes | None, position: str, key: bytes | None
    ) -> list[tuple[ObjectCreated, str, Manifest]]:
        """(event, object key, manifest) per manifest an S3 event announces; the unreadable go to the DLQ."""
        try:
            created = parse_object_created(data)
        except EventError as exc:
            self._dead_letter_sot(key, data, position, str(exc))
            return []
        found = []
        for event in created:
            try:
                object_key = self.store.key_of(event)
                if not object_key.endswith(MANIFEST):
                    continue
                found.append((event, object_key, read_manifest(self.store, object_key)))
            except (EventError, BatchLoadError) as exc:
                self._dead_letter_sot(key, data, position, str(exc))
        return found

    # ---- sot.batches -------------------------------------------------------------------------
    def open_batch(self, data: bytes | None, position: str, key: bytes | None = None) -> list[str]:
        """Open a round per manifest in the event; a repeat for an emitted round opens the next one."""
        opened = []
        for event, object_key, manifest in self._manifests(data, position, key):
            if manifest.kind != "snapshot":
                continue
            rkey = round_key(manifest.processing_date, manifest.network)
            state = self.tables.batches.get(rkey)
            opened_at = _millis(event.event_time)
            if state is not None and state.get("opened_by") == position:
                continue  # the same event delivered again
            if state is not None and state.get("opened") and not state.get("emitted") and not state.get("failed"):
                continue  # the round is already open: keep its deadline
            fresh = state is not None and state.get("opened") and state.get("emitted")
            new_state = dict(state or {"version": 0})
            new_state.update(
                opened=True,
                emitted=False,
                late_pending=False,
                network=manifest.network,
                date=manifest.processing_date.isoformat(),
                window_days=manifest.window_days,
                batch_id=manifest.batch_id,
                manifest_key=object_key,
                published_at=_millis(manifest.published_at),
                opened_at=opened_at,
                deadline_at=opened_at + int(self.settings.deadline_s * 1000),
                opened_by=position,
                failed=None,
            )
            if fresh:
                self._clear_round(rkey)  # miners re-score a re-published batch
            self._contents.pop(object_key, None)
            self.tables.batches[rkey] = new_state
            opened.append(rkey)
        if opened:
            self.expire()
        return opened

    def _dead_letter_sot(self, key: bytes | None, data: bytes | None, position: str, reason: str) -> None:
        topic, partition, offset = position.rsplit(":", 2)
        record = InboxRecord(key, data, topic, int(partition), int(offset))
        self.producer.send(self.topics.dlq("sot"), key, data, headers=record.headers(reason))
        self.producer.flush()
        self.dead_letters += 1
        log.warning("sot event dead-lettered: %s", reason)

    def _forget_decoded(self, prefix: str) -> None:
        for key in [k for k in self._decoded if k.startswith(prefix)]:
            del self._decoded[key]

    def _clear_round(self, rkey: str, keep_counts: bool = True) -> None:
        prefix = rkey + SEP
        self._forget_decoded(prefix)
        for key in keys_with_prefix(self.tables.chunks, prefix):
            del self.tables.chunks[key]
        for key, value in list(items_with_prefix(self.tables.stats, prefix)):
            kept = {"late": value.get("late", [])} if keep_counts else {}
            self.tables.stats[key] = kept

    # ---- validator.inbox ---------------------------------------------------------------------
    def ingest(self, records: Sequence[InboxRecord], *, replaying: bool = False) -> set[str]:
        """Store a batch of miner records, count facts, dead-letter what cannot be used."""
        stats: dict[str, dict[str, Any]] = {}
        index: dict[str, dict[str, dict[str, int]]] = {}
        touched: set[str] = set()
        late_rounds: set[str] = set()
        dead = 0

        def stats_of(key: str) -> dict[str, Any]:
            if key not in stats:
                stats[key] = dict(self.tables.stats.get(key) or {})
            return stats[key]

        def add(st: dict[str, Any], name: str, item: str) -> None:
            values = set(st.get(name, []))
            values.add(item)
            st[name] = sorted(values)

        for rec in records:
            miner = self.topics.miner_id_of(rec.topic)
            reason = None
            if miner is None:
                reason = f"source topic {rec.topic!r} is not a miner score topic"
            else:
                try:
                    decoded = self.codec.decode(rec.value)
                except CodecError as exc:
                    decoded = None
                    reason = f"undecodable: {exc}"
            if reason is None and decoded is not None:
                reason = self._problem(decoded.name, decoded.record, miner or "")
            if reason is not None or decoded is None:
                self._dead_letter(rec, reason or "undecodable")
                dead += 1
                day = _key_date(rec.key)
                if miner is not None and day is not None:
                    add(stats_of(miner_key(day, ANY_NETWORK, miner)), "dlq", rec.position)
                continue
            assert miner is not None
            body = decoded.record
            date: dt.date = body["processing_date"]
            network = str(body["network"])
            rkey = round_key(date, network)
            entry = index.setdefault(date.isoformat(), dict(self.tables.index.get(date.isoformat()) or {}))
            parts = dict(entry.get(rec.topic, {}))
            parts[str(rec.partition)] = min(rec.offset, parts.get(str(rec.partition), rec.offset))
            entry[rec.topic] = parts
            state = self.tables.batches.get(rkey) or {}
            emitted = bool(state.get("emitted")) and not replaying
            st = stats_of(miner_key(date, network, miner))
            if decoded.name == COMPLETE_RECORD:
                if (st.get("complete") or {}).get("position") == rec.position:
                    continue
                st["complete"] = {
                    "position": rec.position,
                    "alert_count": int(body["alert_count"]),
                    "cluster_count": int(body["cluster_count"]),
                    "alert_chunks": int(body["alert_chunks"]),
                    "cluster_chunks": int(body["cluster_chunks"]),
                    "checksum": str(body["checksum"]),
                    "model_versions": dict(sorted(body["model_versions"].items())),
                    "produced_at": _as_millis(body["produced_at"]),
                }
                if emitted:
                    add(st, "late", rec.position)
                    late_rounds.add(rkey)
                touched.add(rkey)
                continue
            kind = ALERT if decoded.name == ALERT_RECORD else CLUSTER
            cid = chunk_id(kind, int(body["bucket"]), int(body["chunk"]))
            ckey = chunk_key(date, network, miner, kind, int(body["bucket"]), int(body["chunk"]))
            previous = self.tables.chunks.get(ckey)
            if previous is not None:
                old = StoredChunk.from_value(previous)
                if old.position == rec.position:
                    continue  # redelivered by the bridge or a restart
                add(st, "resubmitted", rec.position)
                if self._changed_scores(self._decoded.get(ckey), old, body):
                    add(st, "nondeterministic", cid)
            self.tables.chunks[ckey] = StoredChunk(rec.topic, rec.partition, rec.offset, rec.value or b"").to_value()
            self._decoded[ckey] = (rec.position, decoded)
            add(st, "chunks", cid)
            if emitted:
                add(st, "late", rec.position)
            touched.add(rkey)
        for key, value in stats.items():
            self.tables.stats[key] = value
        for key, value in index.items():
            self.tables.index[key] = value
        if self.settings.allow_late_versions:
            for rkey in late_rounds:
                state = dict(self.tables.batches.get(rkey) or {})
                if state.get("emitted"):
                    state["late_pending"] = True
                    self.tables.batches[rkey] = state
        if dead:
            self.producer.flush()
            self.dead_letters += dead
        return touched

    @staticmethod
    def _problem(name: str, body: dict[str, Any], miner: str) -> str | None:
        if name not in (ALERT_RECORD, CLUSTER_RECORD, COMPLETE_RECORD):
            return f"unexpected record type {name} on a miner score topic"
        if body.get("miner_id") != miner:
            return f"record of miner {body.get('miner_id')!r} on the topic of miner {miner!r}"
        if name == ALERT_RECORD and not (len(body["alert_ids"]) == len(body["scores"]) == len(body["ranks"])):
            return "alert_ids, scores and ranks are not aligned"
        if name == CLUSTER_RECORD and len(body["cluster_ids"]) != len(body["scores"]):
            return "cluster_ids and scores are not aligned"
        return None

    def _changed_scores(self, cached: tuple[str, Decoded] | None, stored: StoredChunk, body: dict[str, Any]) -> bool:
        """Same chunk, same model version, different scores: not deterministic."""
        if cached is not None and cached[0] == stored.position:
            old = cached[1].record
        else:
            try:
                old = self.codec.decode(stored.data).record
            except CodecError:
                return False
        if old.get("model_version") != body.get("model_version"):
            return False
        id_field = "alert_ids" if "alert_ids" in body else "cluster_ids"
        before = dict(zip(old.get(id_field, []), old.get("scores", []), strict=False))
        return any(i in before and before[i] != s for i, s in zip(body[id_field], body["scores"], strict=False))

    def _dead_letter(self, rec: InboxRecord, reason: str) -> None:
        self.producer.send(self.topics.dlq("scores"), rec.key, rec.value, headers=rec.headers(reason))

    # ---- timer -------------------------------------------------------------------------------
    def check(self, now_ms: int) -> list[tuple[str, int, str]]:
        """Close rounds that are complete or past their deadline; late versions; pending labels."""
        done = []
        for rkey in sorted(self.tables.batches.keys()):
            state = self.tables.batches.get(rkey) or {}
            if state.get("failed"):
                continue  # the batch files cannot be read; a new batch event retries
            try:
                if state.get("opened") and not state.get("emitted"):
                    if self.all_complete(rkey):
                        done.append(self.emit(rkey, "all_complete"))
                    elif now_ms >= int(state["deadline_at"]):
                        done.append(self.emit(rkey, "deadline"))
                elif state.get("emitted") and state.get("late_pending") and self.settings.allow_late_versions:
                    done.append(self.emit(rkey, "late_records"))
            except BatchLoadError as exc:
                log.error("round %s cannot close: %s", rkey, exc)
                self.tables.batches[rkey] = {**state, "failed": str(exc)}
                continue
            state = self.tables.batches.get(rkey) or {}
            if state.get("emitted") and state.get("labels_key") and state.get("labels_version") != state["version"]:
                self.apply_labels(rkey)
        return done

    def expected_miners(self, now_ms: int | None = None) -> list[str]:
        """Configured and registered miners that are active (``validator.registry``) at ``now_ms``."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return miners_to_wait_for(self.settings.expected_miners, self.tables, self.settings.liveness, now)

    def all_complete(self, rkey: str) -> bool:
        expected = self.expected_miners()
        if not expected:
            return False
        date, network = parse_round_key(rkey)
        for miner in expected:
            st = self.tables.stats.get(miner_key(date, network, miner)) or {}
            marker = st.get("complete")
            if not marker:
                return False
            chunks = st.get("chunks", [])
            alerts = sum(1 for c in chunks if c.startswith(ALERT + SEP))
            if alerts < marker["alert_chunks"] or len(chunks) - alerts < marker["cluster_chunks"]:
                return False  # the marker overtook chunks still in flight on other partitions
        return True

    # ---- closing a round ---------------------------------------------------------------------
    def contents_of(self, state: dict[str, Any]) -> BatchContents:
        key = str(state["manifest_key"])
        if key not in self._contents:
            if len(self._contents) > 8:
                self._contents.pop(next(iter(self._contents)))
            self._contents[key] = load_batch(self.store, read_manifest(self.store, key), self.private_store)
        return self._contents[key]

    def evaluate(
        self, rkey: str, version: int, fixed_weights: dict[str, float] | None = None
    ) -> tuple[RoundOutcome, BatchContents]:
        """The round's outcome as version ``version``, judged against the last version before it."""
        state = self.tables.batches[rkey]
        date, network = parse_round_key(rkey)
        contents = self.contents_of(state)
        submissions = collect_submissions(items_with_prefix(self.tables.chunks, rkey + SEP), self.codec, self._decoded)
        dlq: dict[str, int] = {}
        for key, value in items_with_prefix(self.tables.stats, miner_key(date, ANY_NETWORK, "")):
            dlq[key.split(SEP)[2]] = len(value.get("dlq", []))
        facts: dict[str, MinerFacts] = {}
        for key, value in items_with_prefix(self.tables.stats, rkey + SEP):
            miner = key.split(SEP)[2]
            facts[miner] = MinerFacts(
                marker=value.get("complete"),
                resubmissions=len(value.get("resubmitted", [])),
                determinism_violations=len(value.get("nondeterministic", [])),
                late_records=len(value.get("late", [])),
                dead_letters=dlq.get(miner, 0),
            )
        for miner, count in dlq.items():
            if miner not in facts:
                facts[miner] = MinerFacts(dead_letters=count)
        history = {
            m: dict(self.tables.weights.get(m) or {})
            for m in set(submissions) | set(facts) | set(self.expected_miners())
        }
        inputs = RoundInputs(
            date=date,
            # latency counts from the announcement this round answers: a replayed batch is re-announced
            published_at_ms=int(state.get("opened_at", state["published_at"])),
            contents=contents,
            submissions=submissions,
            facts=facts,
            expected=self.expected_miners(),
            history=history,
            fixed_weights=fixed_weights,
            previous=self.previous_ensemble(rkey, version, contents),
        )
        return evaluate_round(inputs, self.settings), contents

    def previous_ensemble(self, rkey: str, version: int, contents: BatchContents) -> StoredEnsemble | None:
        """The last version emitted before ``version`` if it covers the same alerts as ``contents``."""
        parts: dict[int, list[Any]] = {}
        for key, value in items_with_prefix(self.tables.ensembles, rkey + SEP):
            parts.setdefault(int(key.split(SEP)[2]), []).append(value)
        earlier = [v for v in parts if v < version]
        if not earlier:
            return None
        stored = StoredEnsemble.from_values(parts[max(earlier)])
        if stored is None or stored.digest != ids_digest(contents.alert_ids.tolist()):
            return None
        return stored

    def _keep_ensemble(self, rkey: str, outcome: RoundOutcome, contents: BatchContents, version: int) -> None:
        """Store this version's alert scores (for the next version's plagiarism check); drop older ones."""
        date, network = parse_round_key(rkey)
        alerts = outcome.alerts
        stored = StoredEnsemble(
            version,
            ids_digest(contents.alert_ids.tolist()),
            {m: float(w) for m, w in zip(outcome.miners, outcome.weights, strict=True)},
            np.where(alerts.miner_count > 0, alerts.score, np.nan),
        )
        for key in keys_with_prefix(self.tables.ensembles, rkey + SEP):
            if int(key.split(SEP)[2]) < version - 1:
                del self.tables.ensembles[key]
        for part, value in enumerate(stored.to_values()):
            self.tables.ensembles[ensemble_key(date, network, version, part)] = value

    def emit(self, rkey: str, trigger: str) -> tuple[str, int, str]:
        """Send the ensemble of a round as version + 1, flush, then record it as emitted."""
        state = dict(self.tables.batches[rkey])
        date, network = parse_round_key(rkey)
        version = int(state.get("version", 0)) + 1
        outcome, contents = self.evaluate(rkey, version)
        self._forget_decoded(rkey + SEP)  # emitted: later reads (labels) decode from the table
        topics = self.topics
        prefix = f"{date.isoformat()}:"
        for topic, encoder, scores, ids in (
            (topics.ensemble_alerts, self._alert_encoder, outcome.alerts, contents.alert_ids.tolist()),
            (topics.ensemble_clusters, self._cluster_encoder, outcome.clusters, contents.cluster_ids.tolist()),
        ):
            payloads = encoder.encode(scores, outcome.miners, ids, network, date, version)
            for key, value in zip(map(prefix.__add__, ids), payloads, strict=True):
                self.producer.send(topic, key, value)
        for key, record in immediate_results(outcome, network, date, version):
            self.producer.send(topics.validator_results, key, self.codec.encode("riskstream.ValidationResult", record))
        self.producer.flush()  # every alert and cluster of this version is out before the batch record
        batch = batch_record(
            outcome,
            contents,
            network=network,
            date=date,
            window_days=int(state["window_days"]),
            batch_id=str(state["batch_id"]),
            version=version,
            trigger=trigger,
            expected=self.expected_miners(),
            deadline_ms=int(state["deadline_at"]),
        )
        self.producer.send(
            topics.ensemble_batches, batch_key(network, date), self.codec.encode("riskstream.EnsembleBatch", batch)
        )
        self.producer.flush()
        self._keep_ensemble(rkey, outcome, contents, version)
        for row, miner in enumerate(outcome.miners):
            self.tables.results[miner_key(date, network, miner)] = {
                "integrity": float(outcome.integrity[row].score),
                "behaviour": float(outcome.behaviour[row].score),
                "immediate": float(outcome.immediate[row]),
                "weight": float(outcome.weights[row]),
                "passed": bool(outcome.integrity[row].passed),
                "reasons": outcome.reasons[row],
                "version": version,
            }
        state.update(
            emitted=True,
            version=version,
            trigger=trigger,
            late_pending=False,
            weights={m: float(w) for m, w in zip(outcome.miners, outcome.weights, strict=True)},
        )
        self.tables.batches[rkey] = state
        log.info("ensemble %s v%d (%s): %d alerts", rkey, version, trigger, len(contents.alert_ids))
        return rkey, version, trigger

    # ---- sot.labels --------------------------------------------------------------------------
    def note_labels(self, data: bytes | None, position: str, key: bytes | None = None) -> list[str]:
        """Remember where a date's labels are; they are applied once its ensemble is out."""
        noted = []
        for _, object_key, manifest in self._manifests(data, position, key):
            rkey = round_key(manifest.processing_date, manifest.network)
            state = dict(self.tables.batches.get(rkey) or {"version": 0})
            state["labels_key"] = object_key
            state.pop("labels_version", None)
            self.tables.batches[rkey] = state
            noted.append(rkey)
        return noted

    def apply_labels(self, rkey: str) -> None:
        state = dict(self.tables.batches[rkey])
        date, network = parse_round_key(rkey)
        version = int(state["version"])
        try:
            labels = load_labels(self.store, read_manifest(self.store, str(state["labels_key"])))
        except BatchLoadError as exc:
            log.error("labels of %s cannot be applied: %s", rkey, exc)
            state["labels_version"] = version
            self.tables.batches[rkey] = state
            return
        outcome, contents = self.evaluate(rkey, version, fixed_weights=dict(state.get("weights") or {}))
        truth = judge_ground_truth(
            outcome, contents, labels, k=self.settings.precision_k, top_k=self.settings.top_contributors
        )
        stored = {m: dict(self.tables.results.get(miner_key(date, network, m)) or {}) for m in outcome.miners}
        results = ground_truth_results(outcome, truth, stored)
        for miner, body in results:
            if miner == ENSEMBLE_ID:
                continue
            history = dict(self.tables.weights.get(miner) or {})
            history[date.isoformat()] = body["final_score"]
            self.tables.weights[miner] = dict(sorted(history.items())[-HISTORY_KEEP:])
        for miner, body in results:
            record = {
                "network": network,
                "processing_date": date,
                "miner_id": miner,
                "stage": "ground_truth",
                "version": version,
                **body,
            }
            self.producer.send(
                self.topics.validator_results,
                f"{date.isoformat()}:{miner}",
                self.codec.encode("riskstream.ValidationResult", record),
            )
        self.producer.flush()
        state["labels_version"] = version
        self.tables.batches[rkey] = state
        log.info("ground truth of %s v%d: ensemble auc_pr %.4f", rkey, version, truth.ensemble_metrics["auc_pr"])

    # ---- replay ------------------------------------------------------------------------------
    def replay(
        self, network: str, date: dt.date, records: Sequence[InboxRecord], position: str = ""
    ) -> tuple[str, int, str] | None:
        """Rebuild a round from re-read miner records and emit it as a new version.

        ``position`` is the control command's; a command delivered again is not replayed twice.
        """
        rkey = round_key(date, network)
        state = self.tables.batches.get(rkey)
        if position and state is not None and position in state.get("replayed_by", []):
            return None
        if state is None or not state.get("opened"):
            window = next((self._window_of(r) for r in records if self._window_of(r) is not None), None)
            if window is None:
                msg = f"replay of {network} {date}: no batch and no miner records to rebuild it from"
                raise ReplayError(msg)
            key = batch_manifest_key(network, date, window)
            manifest = read_manifest(self.store, key)
            published = _millis(manifest.published_at)
            self.tables.batches[rkey] = {
                **(state or {"version": 0}),
                "opened": True,
                "emitted": False,
                "network": network,
                "date": date.isoformat(),
                "window_days": window,
                "batch_id": manifest.batch_id,
                "manifest_key": key,
                "published_at": published,
                "opened_at": published,
                "deadline_at": published + int(self.settings.deadline_s * 1000),
            }
        self._clear_round(rkey)
        self.ingest(records, replaying=True)
        done = self.emit(rkey, "replay")
        if position:
            state = dict(self.tables.batches[rkey])
            state["replayed_by"] = [*state.get("replayed_by", [])[-20:], position]
            self.tables.batches[rkey] = state
        return done

    def _window_of(self, rec: InboxRecord) -> int | None:
        try:
            return int(self.codec.decode(rec.value).record["window_days"])
        except (CodecError, KeyError, TypeError, ValueError):
            return None

    # ---- retention ---------------------------------------------------------------------------
    def expire(self) -> int:
        """Drop chunks and counted facts of dates older than the newest date minus the retention."""
        dates = [d for d in (date_of_key(k) for k in list(self.tables.batches)) if d is not None]
        if not dates:
            return 0
        cutoff = max(dates) - dt.timedelta(days=self.settings.retention_days)
        for key in [k for k in self._decoded if (date_of_key(k) or cutoff) < cutoff]:
            del self._decoded[key]
        dropped = 0
        for table in (self.tables.chunks, self.tables.stats, self.tables.ensembles):
            for key in list(table.keys()):
                day = date_of_key(key)
                if day is not None and day < cutoff:
                    del table[key]
                    dropped += 1
        return dropped
