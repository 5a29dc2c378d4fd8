"""Rounds: the coordinator of every (date, network) round, from the batch event to tier 3.

A round opens on a batch event, gathers miner records as they stream in (``Intake``), and closes
when every expected miner has completed or at its deadline; closing emits the ensemble, the batch
record and the immediate verdicts (``Emitter``). Labels then give tier 3 and update the miners'
score history. A second batch event for an emitted date, or a replay command, opens a new round
whose ensemble is version + 1. All state lives in the tables, so a restarted worker carries on
where it stopped.

Every operation has a plain form (tests, tools) and an ``*_async`` form for the Faust agents: the
latter run object-store reads, parquet, evaluation and producer flushes in a worker thread, keep
table writes on the event loop, and take one lock so operations never interleave.

    rounds = Rounds(tables, settings, codec, store, producer)
    rounds.open_batch(event_bytes, position)          # sot.batches
    rounds.ingest(inbox_records)                      # validator.inbox, one call per batch
    rounds.check(now_ms)                              # timer: deadlines, late versions, labels
    await rounds.check_async(now_ms)                  # the same from an agent
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from streams.codec import AvroCodec
from streams.kafka import Producer
from streams.objectstore import ObjectStore
from streams.signing import Signer
from validator.batches import BatchContents
from validator.bridge import InboxRecord
from validator.emitter import EmitJob, Emitted, Emitter
from validator.errors import BatchLoadError
from validator.intake import Found, Intake, Outputs
from validator.outcome import RoundOutcome
from validator.replay import Replays
from validator.retention import expire_tables, retention_cutoff
from validator.settings import ValidatorSettings
from validator.state import RoundState
from validator.tables import RoundKey, StoredEnsemble, ValidatorTables
from validator.watermark import Watermarks

log = logging.getLogger(__name__)
Reopen = Callable[[dt.date], str | None]
T = TypeVar("T")
Done = tuple[str, int, str]

__all__ = ["Producer", "Rounds"]


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


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
        watermarks: Watermarks | None = None,
        signer: Signer | None = None,
    ) -> None:
        self.tables = tables
        self.settings = settings
        self.codec = codec
        self.store = store
        self.topics = settings.stack.topics
        self.outputs = Outputs(producer)
        self.intake = Intake(tables, settings, codec, store, self.outputs)
        self.emitter = Emitter(self.intake, private_store, signer)
        self.replays = Replays(self.intake)
        self._lock = asyncio.Lock()
        # with a bridge in front: deadlines close only once the inbox is read up to them
        self.watermarks = watermarks

    @property
    def producer(self) -> Producer:
        return self.outputs.producer

    @producer.setter
    def producer(self, producer: Producer) -> None:
        self.outputs.producer = producer

    @property
    def dead_letters(self) -> int:
        return self.outputs.dead_letters

    # ---- sot.batches / sot.labels ------------------------------------------------------------
    def open_batch(
        self, data: bytes | None, position: str, key: bytes | None = None, reopen: Reopen | None = None
    ) -> list[str]:
        """Open a round per manifest in the event; a repeat for an emitted round opens the next one.

        ``reopen(date)`` says why a repeat must not reopen an emitted date (None: it may).
        """
        return self._opened(self.intake.manifests(data, position, key), position, reopen)

    async def open_batch_async(
        self, data: bytes | None, position: str, key: bytes | None = None, reopen: Reopen | None = None
    ) -> list[str]:
        async with self._lock:
            found = await _in_thread(self.intake.manifests, data, position, key)
            opened = self._opened(found, position, reopen)
            states = [RoundState.from_value(self.tables.batches[k]) for k in opened]
            await _in_thread(self.emitter.preload, states)  # while the miners score: the close finds it loaded
            return opened

    def _opened(self, found: Found, position: str, reopen: Reopen | None = None) -> list[str]:
        for _, object_key, _ in found:
            self.emitter.forget_contents(object_key)
        opened = self.intake.open_rounds(found, position, reopen)
        if opened:
            self.expire()
        return opened

    def note_labels(self, data: bytes | None, position: str, key: bytes | None = None) -> list[str]:
        """Remember where a date's labels are; they are applied once its ensemble is out."""
        return self.intake.note_labels(self.intake.manifests(data, position, key))

    async def note_labels_async(self, data: bytes | None, position: str, key: bytes | None = None) -> list[str]:
        async with self._lock:
            return self.intake.note_labels(await _in_thread(self.intake.manifests, data, position, key))

    # ---- validator.inbox ---------------------------------------------------------------------
    def ingest(self, records: Sequence[InboxRecord], *, replaying: bool = False, now_ms: int | None = None) -> set[str]:
        """Store a batch of miner records, count facts, dead-letter what cannot be used."""
        return self.intake.ingest(records, replaying=replaying, now_ms=now_ms)

    async def ingest_async(self, records: Sequence[InboxRecord]) -> set[str]:
        async with self._lock:
            dead = self.outputs.dead_letters
            touched = self.intake.ingest(records, flush=False)
            if self.outputs.dead_letters != dead:
                await _in_thread(self.outputs.producer.flush)
            return touched

    # ---- timer -------------------------------------------------------------------------------
    def expected_miners(self, now_ms: int | None = None) -> list[str]:
        return self.intake.expected_miners(now_ms)

    def all_complete(self, rkey: str) -> bool:
        return self.intake.all_complete(RoundKey.parse(rkey))

    def _due(self, rkey: RoundKey, now_ms: int) -> str | None:
        """Why the round should emit now, if it should."""
        state = RoundState.from_value(self.tables.batches.get(rkey.text))
        if state.failed:
            return None  # the batch files cannot be read; a new batch event retries
        if state.open:
            if self.intake.all_complete(rkey):
                return "all_complete"
            if now_ms >= state.deadline_at and self._read_up_to(state.deadline_at):
                return "deadline"
        elif state.emitted and state.late_pending and self.settings.allow_late_versions:
            return "late_records"
        return None

    def _read_up_to(self, at_ms: int) -> bool:
        return self.watermarks is None or self.watermarks.caught_up(at_ms)

    def _job(self, rkey: RoundKey, trigger: str, *, reweigh: bool = False) -> EmitJob:
        return self.emitter.prepare_emit(rkey, trigger, self.expected_miners(), reweigh=reweigh)

    def _commit(self, emitted: Emitted) -> Done:
        self.intake.forget_decoded(emitted.job.snapshot.key.prefix)  # later reads (labels) decode from the table
        return self.emitter.commit_emit(emitted)

    def _fail(self, job: EmitJob, exc: BatchLoadError) -> None:
        """The batch failed verification: recorded (its rejection is out), nobody judged; a new event retries."""
        rkey = job.snapshot.key
        log.error("round %s rejected: %s", rkey.text, exc)
        state = RoundState.from_value(self.tables.batches.get(rkey.text))
        self.tables.batches[rkey.text] = state.replace(failed=str(exc), version=job.snapshot.version).to_value()

    def _labels_due(self, rkey: RoundKey, now_ms: int) -> bool:
        """Labels are waiting and due by the validator's own clock (date + tau): an early publication waits."""
        if not RoundState.from_value(self.tables.batches.get(rkey.text)).labels_due:
            return False
        today = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date()
        return today >= rkey.date + dt.timedelta(days=self.settings.labels_tau_days)

    def _round_keys(self) -> list[RoundKey]:
        return [RoundKey.parse(k) for k in sorted(self.tables.batches.keys())]

    def check(self, now_ms: int) -> list[Done]:
        """Close rounds that are complete or past their deadline; late versions; pending labels."""
        done = []
        for rkey in self._round_keys():
            trigger = self._due(rkey, now_ms)
            if trigger is not None:
                job = self._job(rkey, trigger)
                try:
                    done.append(self._commit(self.emitter.run_emit(job)))
                except BatchLoadError as exc:
                    self.emitter.run_reject(job, str(exc))
                    self._fail(job, exc)
                    continue
            if self._labels_due(rkey, now_ms):
                labels = self.emitter.prepare_labels(rkey, self.expected_miners())
                self.emitter.commit_labels(self.emitter.run_labels(labels))
        return done

    async def check_async(self, now_ms: int) -> list[Done]:
        async with self._lock:
            done = []
            for rkey in self._round_keys():
                trigger = self._due(rkey, now_ms)
                if trigger is not None:
                    job = self._job(rkey, trigger)
                    try:
                        done.append(self._commit(await _in_thread(self.emitter.run_emit, job)))
                    except BatchLoadError as exc:
                        await _in_thread(self.emitter.run_reject, job, str(exc))
                        self._fail(job, exc)
                        continue
                if self._labels_due(rkey, now_ms):
                    labels = self.emitter.prepare_labels(rkey, self.expected_miners())
                    self.emitter.commit_labels(await _in_thread(self.emitter.run_labels, labels))
            return done

    # ---- what tests and tools look at --------------------------------------------------------
    def contents_of(self, state: dict[str, Any]) -> BatchContents:
        return self.emitter.contents_of(RoundState.from_value(state))

    def previous_ensemble(self, rkey: str, version: int, contents: BatchContents) -> StoredEnsemble | None:
        return self.emitter.previous_ensemble(RoundKey.parse(rkey), version, contents)

    def evaluate(self, rkey: str, version: int) -> tuple[RoundOutcome, BatchContents]:
        key = RoundKey.parse(rkey)
        return self.emitter.evaluate(self.emitter.snapshot(key, version, self.expected_miners()))

    # ---- replay (validator.replay) -----------------------------------------------------------
    def replay(
        self,
        network: str,
        date: dt.date,
        records: Sequence[InboxRecord],
        position: str = "",
        *,
        reweigh: bool = False,
    ) -> Done | None:
        """Rebuild a round from re-read miner records and emit it as a new version.

        ``position`` is the control command's; a command delivered again is not replayed twice.
        The new version reuses the priors of the version it replays (unchanged inputs give the
        same scores) unless ``reweigh`` asks for today's.
        """
        rkey = RoundKey(date, network)
        if self.replays.seen(rkey, position):
            return None
        self.replays.reopen(rkey, None if self.replays.opened(rkey) else self.replays.manifest_for(rkey, records))
        self.intake.ingest(records, replaying=True)
        done = self._commit(self.emitter.run_emit(self._job(rkey, "replay", reweigh=reweigh)))
        self.replays.mark(rkey, position)
        return done

    async def replay_async(
        self,
        network: str,
        date: dt.date,
        records: Sequence[InboxRecord],
        position: str = "",
        *,
        reweigh: bool = False,
    ) -> Done | None:
        async with self._lock:
            rkey = RoundKey(date, network)
            if self.replays.seen(rkey, position):
                return None
            opened = self.replays.opened(rkey)
            self.replays.reopen(rkey, None if opened else await _in_thread(self.replays.manifest_for, rkey, records))
            self.intake.ingest(records, replaying=True, flush=False)
            emitted = await _in_thread(self.emitter.run_emit, self._job(rkey, "replay", reweigh=reweigh))
            done = self._commit(emitted)
            self.replays.mark(rkey, position)
            return done

    # ---- retention ---------------------------------------------------------------------------
    def expire(self) -> int:
        """Drop chunks and counted facts of dates older than the newest date minus the retention."""
        cutoff = retention_cutoff(self.tables.batches, self.settings.retention_days)
        return expire_tables(self.tables, self.intake.decoded, cutoff)
