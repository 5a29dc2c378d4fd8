"""Intake: what arrives for a round, checked and counted as it arrives.

Batch and label events open rounds and note labels; miner records are checked (decodable, on
their own miner's topic, aligned), stored per chunk (a resubmission replaces, a changed score
under the same model version is counted as nondeterminism) and indexed for replay; a round is
complete when every awaited miner's marker and chunks are in. Nothing here emits ensembles.

    intake = Intake(tables, settings, codec, store, outputs)
    found = intake.manifests(event_bytes, position, key)      # reads S3: off the event loop
    intake.open_rounds(found, position)                       # table writes: on the event loop
    intake.ingest(records)                                    # validator.inbox, one call per batch
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from streams.batch import MANIFEST, Manifest
from streams.codec import AvroCodec, Decoded
from streams.errors import CodecError, EventError
from streams.kafka import Producer
from streams.objectstore import ObjectCreated, ObjectStore, parse_object_created
from streams.records import ALERT_SCORE_BATCH, CLUSTER_SCORE_BATCH, SUBMISSION_COMPLETE
from validator.batches import read_manifest
from validator.bridge import InboxRecord
from validator.errors import BatchLoadError
from validator.roster import miners_to_wait_for
from validator.settings import ValidatorSettings
from validator.state import RoundState
from validator.tables import (
    ALERT,
    ANY_NETWORK,
    CLUSTER,
    SEP,
    RoundKey,
    StoredChunk,
    ValidatorTables,
    chunk_id,
    chunk_key,
    items_with_prefix,
    keys_with_prefix,
    miner_key,
)

log = logging.getLogger(__name__)

Found = list[tuple[ObjectCreated, str, Manifest]]
KEEP_ARRIVALS = 50  # completion markers whose arrival is remembered per miner and round


class Outputs:
    """The producer every stage sends through, and the count of what was dead-lettered."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.dead_letters = 0


def millis(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def _as_millis(value: Any) -> int:
    return millis(value) if isinstance(value, dt.datetime) else int(value)


def _key_date(key: bytes | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat((key or b"").decode().split(":", 1)[0])
    except (ValueError, UnicodeDecodeError):
        return None


def _add(st: dict[str, Any], name: str, item: str) -> None:
    values = set(st.get(name, []))
    values.add(item)
    st[name] = sorted(values)


def _content_seen(seen: dict[str, Any], cid: str, body: Mapping[str, Any], at_ms: int) -> dict[str, Any]:
    """``seen`` with chunk ``cid``'s trusted time: when these ids and scores were first on the broker.

    The same scores sent again (a re-announced batch, a redelivery) keep their first time; other
    scores under the id bring their own, so scores sent early cannot lend their time to a copy
    sent later. Kept as chunk id -> [content digest, first seen ms].
    """
    ids = body["alert_ids"] if "alert_ids" in body else body["cluster_ids"]
    digest = hashlib.blake2b(
        "\n".join(map(str, ids)).encode() + np.asarray(body["scores"], dtype=np.float64).tobytes(), digest_size=12
    ).hexdigest()
    held = seen.get(cid)
    first = min(int(held[1]), at_ms) if held and held[0] == digest else at_ms
    return {**seen, cid: [digest, first]}


class Intake:
    """Arrival checks, determinism and completeness over the tables; see the module docstring."""

    def __init__(
        self,
        tables: ValidatorTables,
        settings: ValidatorSettings,
        codec: AvroCodec,
        store: ObjectStore,
        outputs: Outputs,
    ) -> None:
        self.tables = tables
        self.settings = settings
        self.codec = codec
        self.store = store
        self.outputs = outputs
        self.topics = settings.stack.topics
        # chunks decoded on arrival, kept until their round is emitted: chunk key -> (position, record)
        self.decoded: dict[str, tuple[str, Decoded]] = {}

    # ---- sot.batches and sot.labels ----------------------------------------------------------
    def manifests(self, data: bytes | None, position: str, key: bytes | None) -> Found:
        """(event, object key, manifest) per manifest an S3 event announces; the unreadable go to the DLQ.

        Reads the object store and may flush dead letters: call it off the event loop.
        """
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

    def open_rounds(
        self, found: Found, position: str, reopen: Callable[[dt.date], str | None] | None = None
    ) -> list[str]:
        """Open a round per snapshot manifest; a repeat for an emitted round opens the next one.

        ``reopen(date)`` says why a repeat must not reopen an emitted date (None, or no ``reopen``: it may).
        """
        opened = []
        for event, object_key, manifest in found:
            if manifest.kind != "snapshot":
                continue
            rkey = RoundKey(manifest.processing_date, manifest.network)
            stored = self.tables.batches.get(rkey.text)
            state = RoundState.from_value(stored)
            opened_at = millis(event.event_time)
            if stored is not None and state.opened_by == position:
                continue  # the same event delivered again
            if stored is not None and state.open:
                continue  # the round is already open: keep its deadline
            fresh = stored is not None and state.opened and state.emitted
            refused = reopen(manifest.processing_date) if fresh and reopen is not None else None
            if refused is not None:
                log.warning("repeat announcement of %s at %s ignored: %s", rkey.text, position, refused)
                continue
            new_state = state.reopened(
                manifest, object_key, opened_at, self.settings.deadline_s,
                late_pending=False, opened_by=position, failed=None,
            )  # fmt: skip
            if fresh:
                self.clear_round(rkey)  # miners re-score a re-published batch
            self.tables.batches[rkey.text] = new_state.to_value()
            opened.append(rkey.text)
        return opened

    def note_labels(self, found: Found) -> list[str]:
        """Remember where a date's labels are; they are applied once its ensemble is out."""
        noted = []
        for _, object_key, manifest in found:
            rkey = RoundKey(manifest.processing_date, manifest.network)
            state = RoundState.from_value(self.tables.batches.get(rkey.text))
            self.tables.batches[rkey.text] = state.replace(labels_key=object_key, labels_version=None).to_value()
            noted.append(rkey.text)
        return noted

    def _dead_letter_sot(self, key: bytes | None, data: bytes | None, position: str, reason: str) -> None:
        topic, partition, offset = position.rsplit(":", 2)
        record = InboxRecord(key, data, topic, int(partition), int(offset))
        self.outputs.producer.send(self.topics.dlq("sot"), key, data, headers=record.headers(reason))
        self.outputs.producer.flush()
        self.outputs.dead_letters += 1
        log.warning("sot event dead-lettered: %s", reason)

    # ---- round state -------------------------------------------------------------------------
    def forget_decoded(self, prefix: str) -> None:
        for key in [k for k in self.decoded if k.startswith(prefix)]:
            del self.decoded[key]

    def clear_round(self, rkey: RoundKey, keep_counts: bool = True) -> None:
        """Drop a round's chunks (and counted facts, but its late records) before it is rebuilt."""
        self.forget_decoded(rkey.prefix)
        for key in keys_with_prefix(self.tables.chunks, rkey.prefix):
            del self.tables.chunks[key]
        for key, value in list(items_with_prefix(self.tables.stats, rkey.prefix)):
            # arrival times survive: a replay or a re-scored batch reuses when the scores were first seen
            kept = (
                {k: value[k] for k in ("late", "arrivals", "firsts", "after", "content_seen") if k in value}
                if keep_counts
                else {}
            )
            self.tables.stats[key] = kept

    def expected_miners(self, now_ms: int | None = None) -> list[str]:
        """Configured and registered miners that are active (``validator.roster``) at ``now_ms``."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return miners_to_wait_for(self.settings.expected_miners, self.tables, self.settings.liveness, now)

    def all_complete(self, rkey: RoundKey) -> bool:
        """Every awaited miner's marker is in, and every chunk it announced."""
        expected = self.expected_miners()
        if not expected:
            return False
        for miner in expected:
            st = self.tables.stats.get(rkey.miner(miner)) or {}
            marker = st.get("complete")
            if not marker:
                return False
            chunks = st.get("chunks", [])
            alerts = sum(1 for c in chunks if c.startswith(ALERT + SEP))
            if alerts < marker["alert_chunks"] or len(chunks) - alerts < marker["cluster_chunks"]:
                return False  # the marker overtook chunks still in flight on other partitions
        return True

    # ---- validator.inbox ---------------------------------------------------------------------
    def ingest(
        self,
        records: Sequence[InboxRecord],
        *,
        replaying: bool = False,
        flush: bool = True,
        now_ms: int | None = None,
    ) -> set[str]:
        """Store a batch of miner records, count facts, dead-letter what cannot be used.

        A completion marker's trusted time is when the bridge saw it (``seen_ms``; a replayed
        marker reuses the time it was first seen; else ``now_ms``), never its ``produced_at``;
        its submission time is when these same scores (checksum) were first seen for the date.
        With ``flush=False`` the caller flushes the dead letters (off the event loop).
        """
        now = int(time.time() * 1000) if now_ms is None else now_ms
        stats: dict[str, dict[str, Any]] = {}
        index: dict[str, dict[str, dict[str, int]]] = {}
        touched: set[str] = set()
        late_rounds: set[str] = set()
        dead = 0

        def stats_of(key: str) -> dict[str, Any]:
            if key not in stats:
                stats[key] = dict(self.tables.stats.get(key) or {})
            return stats[key]

        for rec in records:
            miner = self.topics.miner_id_of(rec.topic)
            reason = None
            decoded: Decoded | None = None
            if miner is None:
                reason = f"source topic {rec.topic!r} is not a miner score topic"
            else:
                try:
                    decoded = self.codec.decode(rec.value)
                except CodecError as exc:
                    reason = f"undecodable: {exc}"
            if reason is None and decoded is not None:
                reason = self._problem(decoded.name, decoded.record, miner or "")
            if reason is not None or decoded is None:
                self._dead_letter(rec, reason or "undecodable")
                dead += 1
                day = _key_date(rec.key)
                if miner is not None and day is not None:
                    _add(stats_of(miner_key(day, ANY_NETWORK, miner)), "dlq", rec.position)
                continue
            assert miner is not None
            body = decoded.record
            date: dt.date = body["processing_date"]
            rkey = RoundKey(date, str(body["network"]))
            entry = index.setdefault(date.isoformat(), dict(self.tables.index.get(date.isoformat()) or {}))
            parts = dict(entry.get(rec.topic, {}))
            parts[str(rec.partition)] = min(rec.offset, parts.get(str(rec.partition), rec.offset))
            entry[rec.topic] = parts
            emitted = RoundState.from_value(self.tables.batches.get(rkey.text)).emitted and not replaying
            st = stats_of(rkey.miner(miner))
            if decoded.name == SUBMISSION_COMPLETE:
                if (st.get("complete") or {}).get("position") == rec.position:
                    continue
                arrivals = dict(st.get("arrivals") or {})
                seen = int(arrivals.get(rec.position, rec.seen_ms if rec.seen_ms is not None else now))
                arrivals[rec.position] = seen
                firsts = dict(st.get("firsts") or {})
                checksum = str(body["checksum"])
                firsts[checksum] = min(int(firsts.get(checksum, seen)), seen)
                after = dict(st.get("after") or {})
                if rec.after_ms is not None and rec.position not in after:  # as first forwarded, kept on replay
                    after[rec.position] = int(rec.after_ms)
                st["arrivals"] = dict(sorted(arrivals.items(), key=lambda kv: kv[1])[-KEEP_ARRIVALS:])
                st["after"] = {p: after[p] for p in st["arrivals"] if p in after}
                st["firsts"] = dict(sorted(firsts.items(), key=lambda kv: kv[1])[:KEEP_ARRIVALS])
                st["complete"] = {
                    "position": rec.position,
                    "alert_count": int(body["alert_count"]),
                    "cluster_count": int(body["cluster_count"]),
                    "alert_chunks": int(body["alert_chunks"]),
                    "cluster_chunks": int(body["cluster_chunks"]),
                    "checksum": str(body["checksum"]),
                    "model_versions": dict(sorted(body["model_versions"].items())),
                    "produced_at": _as_millis(body["produced_at"]),  # the miner's claim: informational
                    "seen_at": seen,
                    "first_seen": int(firsts[checksum]),
                    "arrived_after": int(after.get(rec.position, 0)),  # a bridge watermark it came after
                }
                if emitted:
                    _add(st, "late", rec.position)
                    late_rounds.add(rkey.text)
                touched.add(rkey.text)
                continue
            kind = ALERT if decoded.name == ALERT_SCORE_BATCH else CLUSTER
            cid = chunk_id(kind, int(body["bucket"]), int(body["chunk"]))
            ckey = chunk_key(date, rkey.network, miner, kind, int(body["bucket"]), int(body["chunk"]))
            previous = self.tables.chunks.get(ckey)
            if previous is not None:
                old = StoredChunk.from_value(previous)
                if old.position == rec.position:
                    continue  # redelivered by the bridge or a restart
                _add(st, "resubmitted", rec.position)
                if self._changed_scores(self.decoded.get(ckey), old, body):
                    _add(st, "nondeterministic", cid)
            self.tables.chunks[ckey] = StoredChunk(rec.topic, rec.partition, rec.offset, rec.value or b"").to_value()
            self.decoded[ckey] = (rec.position, decoded)
            _add(st, "chunks", cid)
            seen = rec.seen_ms if rec.seen_ms is not None else now
            st["last_chunk_at"] = max(int(st.get("last_chunk_at", 0)), int(seen))  # a sign of life (trusted time)
            st["content_seen"] = _content_seen(dict(st.get("content_seen") or {}), cid, body, int(seen))
            if emitted:
                _add(st, "late", rec.position)
            touched.add(rkey.text)
        for key, value in stats.items():
            self.tables.stats[key] = value
        for key, value in index.items():
            self.tables.index[key] = value
        if self.settings.allow_late_versions:
            for text in late_rounds:
                state = RoundState.from_value(self.tables.batches.get(text))
                if state.emitted:
                    self.tables.batches[text] = state.replace(late_pending=True).to_value()
        if dead:
            if flush:
                self.outputs.producer.flush()
            self.outputs.dead_letters += dead
        return touched

    @staticmethod
    def _problem(name: str, body: dict[str, Any], miner: str) -> str | None:
        if name not in (ALERT_SCORE_BATCH, CLUSTER_SCORE_BATCH, SUBMISSION_COMPLETE):
            return f"unexpected record type {name} on a miner score topic"
        if body.get("miner_id") != miner:
            return f"record of miner {body.get('miner_id')!r} on the topic of miner {miner!r}"
        if name == ALERT_SCORE_BATCH and not (len(body["alert_ids"]) == len(body["scores"]) == len(body["ranks"])):
            return "alert_ids, scores and ranks are not aligned"
        if name == CLUSTER_SCORE_BATCH and len(body["cluster_ids"]) != len(body["scores"]):
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
        self.outputs.producer.send(self.topics.dlq("scores"), rec.key, rec.value, headers=rec.headers(reason))
