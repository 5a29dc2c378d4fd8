"""The miner's loop: batch event -> verified batch -> scorer -> Avro records on its own topic.

Everything it talks to is passed in (store, producer, codec, scorer), so it runs against the
real stack from ``miner.app`` and against plain fakes in tests.

    agent = MinerAgent(settings, store=store, producer=producer, codec=codec, scorer=scorer)
    outcome = await agent.handle(message)        # then commit the consumed offset
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from miner import monitoring
from miner.checks import checked_scores
from miner.errors import MinerError, ModelNotFoundError, ScorerError, ScoringStopped
from miner.records import OutRecord, error_record, submission_records
from miner.scorer import Scorer
from miner.scoring import BatchScores
from miner.settings import MinerSettings
from miner.submitted import SubmittedBatches
from streams.batch import MANIFEST, Batch, Manifest, batch_key, read_batch
from streams.codec import AvroCodec
from streams.errors import BatchRejected, CodecError, EventError, ObjectStoreError, SubmissionError
from streams.kafka import Message, Producer
from streams.objectstore import ObjectStore, parse_object_created
from streams.signing import SCORE, Signer

log = logging.getLogger("miner.agent")
SUBMITTED, FAILED, SKIPPED, STOPPED = "submitted", "failed", "skipped", "stopped"


class BatchConsumer(Protocol):
    def batches(self) -> AsyncIterator[list[Message]]: ...

    async def commit(self) -> None: ...


@dataclass(slots=True)
class Outcome:
    status: str  # submitted, failed, skipped, stopped
    object_key: str = ""
    records: int = 0
    error: str = ""


@dataclass(slots=True)
class AgentStats:
    submitted: int = 0
    failed: int = 0
    skipped: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    retrainings: list[dict[str, Any]] = field(default_factory=list)  # outcome of each background retraining


def _network_date(object_key: str) -> tuple[str, dt.date] | None:
    """(network, date) from ``snapshots/{network}/{date}/{window}/manifest.json``."""
    parts = object_key.split("/")
    if len(parts) != 5 or parts[0] != "snapshots":
        return None
    try:
        return parts[1], dt.date.fromisoformat(parts[2])
    except ValueError:
        return None


class MinerAgent:
    """Scores every published batch with its scorer and streams the submission to ``scores.<miner_id>``.

    The scorer can be swapped while the agent runs (``swap``): a submission is built from the
    scorer taken when its batch starts, so no submission mixes model versions.
    """

    def __init__(
        self,
        settings: MinerSettings,
        *,
        store: ObjectStore,
        producer: Producer,
        codec: AvroCodec,
        scorer: Scorer,
        stopping: threading.Event | None = None,
        signer: Signer | None = None,
        reannounced: Callable[[Message], bool] | None = None,
        submitted: SubmittedBatches | None = None,
    ) -> None:
        self.settings = settings
        self.signer = signer  # signs every chunk and marker (the validator drops unsigned ones)
        # a batch it already submitted is scored again only when an operator re-announced it (replay --from sot):
        # a stranger's repeat would make it resubmit after the ensemble, where its records count as late
        self.reannounced = reannounced
        self._submitted = submitted if submitted is not None else SubmittedBatches()
        self.store = store
        self.producer = producer
        self.codec = codec
        self.scorer = scorer
        self.topics = settings.stack.topics
        self.topic = self.topics.miner_scores(settings.miner_id)
        self.stop = asyncio.Event()
        self.stopping = stopping or threading.Event()  # the same signal for scorers waiting in a thread
        self._lock = threading.Lock()
        self._loaded_stamp: int | None = None

    # -- scoring -------------------------------------------------------------------------------

    def _models_stamp(self) -> int | None:
        try:
            return self.settings.models_path.stat().st_mtime_ns
        except OSError:
            return None

    def load_models(self) -> Scorer:
        """Load the newest saved model of a trainable scorer when the model directory changed (blocking)."""
        with self._lock:
            current = self.scorer
            if not current.trainable:
                return current
            stamp = self._models_stamp()
            if current.version and (stamp is None or stamp == self._loaded_stamp):
                return current
            try:
                loaded = current.load(self.settings.models_path)  # ModelNotFoundError says to run miner train
            except ModelNotFoundError:
                if not current.version:
                    raise
                loaded = current  # the directory changed but holds no complete model: keep scoring
            self._loaded_stamp = stamp
            if loaded.version != current.version:
                log.info("miner %s scores with model %s", self.settings.miner_id, loaded.version or "-")
            self.scorer = loaded
            return loaded

    def swap(self, scorer: Scorer) -> None:
        """Score every batch that starts from now on with ``scorer`` (atomic for the batches)."""
        with self._lock:
            self.scorer = scorer
            self._loaded_stamp = self._models_stamp()
        log.info("miner %s swapped to model %s", self.settings.miner_id, scorer.version or "-")

    def score(self, batch: Batch) -> BatchScores:
        """The submission's scores for a verified batch, from one scorer (blocking, CPU-bound)."""
        network = batch.manifest.network
        if network != self.settings.network:
            msg = f"this miner scores {self.settings.network} batches, not {network} (MINER_NETWORK)"
            raise ScorerError(msg)
        scorer = self.load_models()
        return checked_scores(scorer.score(batch), batch, scorer)

    def build(self, object_key: str) -> tuple[Manifest, list[OutRecord]]:
        """Load, verify and score one batch into its records (blocking; nothing is sent)."""
        batch = read_batch(self.store, object_key)
        scores = self.score(batch)
        now = dt.datetime.now(dt.UTC)
        latency_ms = max((now - batch.manifest.published_at).total_seconds() * 1000.0, 0.0)
        monitoring.LATENCY.set(latency_ms / 1000.0)
        records = submission_records(
            scores,
            manifest=batch.manifest,
            miner_id=self.settings.miner_id,
            buckets=self.settings.stack.score_buckets,
            chunk_size=self.settings.chunk_size,
            latency_ms=latency_ms,
            produced_at=now,
        )
        return batch.manifest, records

    # -- events --------------------------------------------------------------------------------

    def _encode(self, records: Sequence[OutRecord]) -> list[tuple[str, bytes]]:
        return [(r.key, self.codec.encode(r.schema, r.value)) for r in records]

    def _signature(self, key: str, value: bytes, manifest: Manifest) -> list[tuple[str, bytes]] | None:
        if self.signer is None:
            return None
        return self.signer.headers(SCORE, key, value, date=manifest.processing_date, batch_id=manifest.batch_id)

    def _report(self, object_key: str, exc: BaseException, manifest: Manifest | None = None) -> Outcome:
        found = _network_date(object_key)
        if manifest is not None:
            key = batch_key(manifest.network, manifest.processing_date)
        else:
            key = batch_key(*found) if found else object_key
        log.error("miner %s cannot score %s: %s: %s", self.settings.miner_id, object_key, type(exc).__name__, exc)
        record = error_record(
            miner_id=self.settings.miner_id,
            key=key,
            object_key=object_key,
            error=exc,
            occurred_at=dt.datetime.now(dt.UTC),
            manifest=manifest,
        )
        self.producer.send(self.topics.miner_errors, record.key, self.codec.encode(record.schema, record.value))
        self.producer.flush()
        return Outcome(FAILED, object_key, error=f"{type(exc).__name__}: {exc}")

    async def _build_unless_stopped(self, object_key: str) -> tuple[Manifest, list[OutRecord]]:
        """``build`` in a thread; a stop meanwhile is passed on to a scorer that waits (it then stops)."""
        building = asyncio.ensure_future(asyncio.to_thread(self.build, object_key))
        stopping = asyncio.ensure_future(self.stop.wait())
        await asyncio.wait({building, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.done():
            self.stopping.set()
        stopping.cancel()
        await asyncio.gather(stopping, return_exceptions=True)
        return await building

    async def handle_key(self, object_key: str) -> Outcome:
        """Score the batch whose manifest is ``object_key`` and send the whole submission, or report why not."""
        try:
            manifest, records = await self._build_unless_stopped(object_key)
            encoded = self._encode(records)  # every record encodes before the first is sent
        except ScoringStopped:
            return Outcome(STOPPED, object_key)  # stopped while a scorer held the batch: nothing sent, not committed
        except (MinerError, BatchRejected, ObjectStoreError, CodecError, SubmissionError) as exc:
            return self._report(object_key, exc)
        except Exception as exc:  # a batch that trips a library (odd values, ...) must not stop the miner
            log.exception("unexpected failure scoring %s", object_key)
            return self._report(object_key, exc)
        if self.stop.is_set():
            return Outcome(STOPPED, object_key)
        for key, value in encoded:
            self.producer.send(self.topic, key, value, headers=self._signature(key, value, manifest))
        self.producer.flush()  # a failed delivery raises: the event stays uncommitted and is redone
        log.info("miner %s submitted %s: %d records", self.settings.miner_id, object_key, len(encoded))
        return Outcome(SUBMITTED, object_key, records=len(encoded))

    async def handle(self, message: Message) -> list[Outcome]:
        """All snapshot manifests an ``sot.batches`` event announces; other objects are skipped."""
        try:
            created = parse_object_created(message.value)
            keys = [self.store.key_of(event) for event in created]
        except EventError as exc:
            where = message.key.decode(errors="replace") if message.key else f"{message.topic}@{message.offset}"
            return [self._report(where, exc)]
        outcomes = []
        for key in keys:
            if not key.startswith("snapshots/") or not key.endswith("/" + MANIFEST):
                outcomes.append(Outcome(SKIPPED, key))
                continue
            if key in self._submitted and not (self.reannounced is not None and self.reannounced(message)):
                log.warning("miner %s: %s announced again without an operator's signature: not re-scored",
                            self.settings.miner_id, key)  # fmt: skip
                outcomes.append(Outcome(SKIPPED, key, error="repeat announcement without an operator signature"))
                continue
            outcome = await self.handle_key(key)
            if outcome.status == SUBMITTED:
                self._submitted.add(key)
            outcomes.append(outcome)
        return outcomes

    async def run(self, consumer: BatchConsumer, *, max_batches: int | None = None) -> AgentStats:
        """Serve events until stopped or ``max_batches`` batches were handled (submitted or failed)."""
        stats = AgentStats()
        batches = consumer.batches()
        while not self.stop.is_set():
            if max_batches is not None and stats.submitted + stats.failed >= max_batches:
                break
            next_batch = asyncio.ensure_future(anext(batches))
            stopping = asyncio.ensure_future(self.stop.wait())
            done, _ = await asyncio.wait({next_batch, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if next_batch not in done:
                next_batch.cancel()
                await asyncio.gather(next_batch, return_exceptions=True)
                break
            stopping.cancel()
            await asyncio.gather(stopping, return_exceptions=True)
            stopped = False
            for message in next_batch.result():
                monitoring.EVENTS_IN.inc()
                started = time.perf_counter()
                for outcome in await self.handle(message):
                    monitoring.observe_outcome(outcome.status, time.perf_counter() - started)
                    stats.outcomes.append(outcome)
                    stopped |= outcome.status == STOPPED
                    stats.submitted += outcome.status == SUBMITTED
                    stats.failed += outcome.status == FAILED
                    stats.skipped += outcome.status == SKIPPED
                if stopped:
                    break
            if stopped:
                break
            await consumer.commit()  # only after every effect of the batch is flushed
        await batches.aclose()  # type: ignore[attr-defined]  # an async generator
        return stats
