"""Several validator workers of one app id: each holds some inbox partitions, together they close rounds.

``VALIDATOR_PARTITIONED=true`` runs this in place of the single Faust worker. Every worker runs a
bridge (one consumer group: the miner topics' partitions are shared) and joins the inbox group
``<app id>-workers`` (range assignor). Every miner keys its chunk of bucket ``b`` of a date ``date:b``
and the bridge sends it to inbox partition ``b mod P``, so every miner's bucket ``b`` lands in one
inbox partition and each partition gets an even share of a date: an assigned partition is checked
and counted by its own ``Intake``, nothing of it is read elsewhere. Rounds close through
``validator.steps`` (see ``validator.steps``): progress, close, per-partition partials, the
weights (computed once, by the holder of inbox partition 0), each partition's share of the
ensemble, the results and batch record. Every worker reads ``sot.batches``, the registry, the
partials and the steps in full (no group), so any of them can take over a partition or the closer's part.

State is the inbox itself: a partition's offset is committed only past the dates whose rounds are
done, so a worker that takes over a partition (a rebalance after a kill) reads it again from there,
rebuilds the same facts, and carries on from the steps already on the topic; nothing is lost and
the ensemble bytes are the same (each step's effect is keyed; the first close, ready and weights
of a round are the ones used).

Served with several workers: first versions of rounds (all complete or deadline), rejected batches,
ground truth (tier 3, from the same partials; final scores shared as a step, so every worker's
history and the next dates' priors agree), and the single worker's retention (``validator.retention``):
a date older than the newest minus ``VALIDATOR_RETENTION_DAYS`` is dropped from every worker's memory
(tables, steps, partials, outcomes), and a step, partial or inbox record of it read later is logged
and ignored; and the registry's liveness: every worker reads ``miners.registry`` in full, and a
round waits for the configured and registered miners that are active (``validator.roster``), their
submissions as the partitions' steps report them (``LedgerSubmissions``). Each worker serves
``/health`` (the inbox partitions it holds, its bridge, the open rounds) and ``/metrics``. Not yet:
replays, late versions.

    run_partitioned(ValidatorSettings(partitioned=True))     # until SIGTERM / Ctrl-C
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import confluent_kafka

from streams.errors import CodecError, KafkaError
from streams.health import Health, HealthServer, announce, watch_broker, withdraw
from streams.kafka import BatchProducer, client_security
from streams.kafka_admin import ensure_topics
from streams.monitoring import metrics_route
from streams.records import ENSEMBLE_ALERT_SCORE, ENSEMBLE_CLUSTER_SCORE
from streams.signing import Signer, claim_of
from validator.bridge import Gate, InboxRecord, MarkerSender, forwarded_by_bridge, run_bridge
from validator.closer import Closer, RoundContext
from validator.closing import closing_inputs, share_of, shared_ensemble, take
from validator.encoding import EnsembleEncoder
from validator.ensemble import EnsembleScores
from validator.identity import IdentityError, KeyBook
from validator.intake import Intake, Outputs
from validator.monitoring import observe_inbox
from validator.partials import digest, encode_partial, partials_of, split_partial
from validator.retention import EXPIRING, drop_expired, expire_tables, expired, retention_cutoff
from validator.roster import apply_registration
from validator.settings import ValidatorSettings
from validator.state import RoundState
from validator.steps import (
    EMITTED,
    PARTIALS_PURPOSE,
    PROGRESS,
    READY,
    STEPS_PURPOSE,
    MinerStep,
    RoundLedger,
    Step,
    decode_step,
    signed,
    verified,
)
from validator.tables import ALERT, SEP, RoundKey, ValidatorTables, date_of_key, items_with_prefix, keys_with_prefix
from validator.watermark import watermark_of

log = logging.getLogger(__name__)
CLOSER_PARTITION = 0  # the holder of this inbox partition closes rounds


@dataclass
class Held:
    """One inbox partition assigned to this worker."""

    partition: int
    intake: Intake
    position: int = -1  # next inbox offset to read (-1: not known yet)
    target: int = -1  # the end offset at assignment: the state is whole once read up to it
    first: dict[str, int] = field(default_factory=dict)  # date -> first inbox offset of its records
    watermark: int = 0  # the latest bridge watermark read here
    read_until: int = 0  # when it was last read to the inbox end (or the watermark)
    sent: tuple[Any, ...] = ()  # the last progress sent, and when
    sent_at: float = 0.0


class PartitionedWorker(RoundContext):
    """One of several validator workers; ``run`` until ``stop`` is set."""

    def __init__(self, settings: ValidatorSettings, stop: threading.Event | None = None) -> None:
        super().__init__(settings)
        self.stop = stop or threading.Event()
        self.opener = Intake(self.shared, settings, self.codec, self.store, Outputs(self.producer))
        self.alert_encoder = EnsembleEncoder.for_record(self.codec, ENSEMBLE_ALERT_SCORE, "alert_id")
        self.cluster_encoder = EnsembleEncoder.for_record(self.codec, ENSEMBLE_CLUSTER_SCORE, "cluster_id")
        self.closer = Closer(self)
        self.held: dict[int, Held] = {}
        self.sent: set[tuple[str, str, int]] = set()  # (round, step, partition) this worker sent
        self.finished: set[str] = set()
        self.ensembles: dict[str, tuple[list[str], EnsembleScores, EnsembleScores]] = {}  # round -> shared ensemble
        self.inbox: Any = None
        self.reader: Any = None
        self.cutoff: dt.date | None = None  # dates before it are expired (``validator.retention``)
        self._ignored: set[tuple[str, dt.date]] = set()  # (what, expired date) already logged
        self._committed_at = 0.0
        self.health = Health("validator", settings.health_max_unreachable_s)

    # ---- consumers ---------------------------------------------------------------------------
    def _config(self, group: str) -> dict[str, Any]:
        return {
            **client_security(),
            "bootstrap.servers": self.servers,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": self.settings.stack.session_timeout_ms,
            "heartbeat.interval.ms": max(self.settings.stack.session_timeout_ms // 5, 500),
            "partition.assignment.strategy": "range",
        }

    def _open(self) -> None:
        topics = self.topics
        ensure_topics(
            self.servers,
            [*topics.all_fixed(), topics.validator_partials, topics.validator_steps],
            self.settings.stack.topic_partitions,
            self.settings.stack.replication_factor,
        )
        self.inbox = confluent_kafka.Consumer(self._config(f"{self.settings.app_id}-workers"))
        self.partitions = len(self._partitions_of(self.inbox, topics.validator_inbox))
        self.inbox.subscribe([topics.validator_inbox], on_assign=self._assigned, on_revoke=self._revoked)
        self.reader = confluent_kafka.Consumer(self._config(f"{self.settings.app_id}-reader-unused"))
        begin = confluent_kafka.OFFSET_BEGINNING
        parts = [
            confluent_kafka.TopicPartition(topic, p, begin)
            for topic in (
                topics.sot_batches,
                topics.sot_labels,
                topics.miner_registry,
                topics.validator_partials,
                topics.validator_steps,
            )  # fmt: skip
            for p in self._partitions_of(self.reader, topic)
        ]
        self.reader.assign(parts)

    @staticmethod
    def _partitions_of(client: Any, topic: str, timeout: float = 60.0) -> list[int]:
        """A topic's partitions, once the broker's metadata lists them (just created: it may lag)."""
        deadline = time.monotonic() + timeout
        while True:
            meta = client.list_topics(topic, timeout=10).topics.get(topic)
            if meta is not None and meta.error is None and meta.partitions:
                return sorted(meta.partitions)
            if time.monotonic() > deadline:
                msg = f"topic {topic} has no partitions after {timeout}s"
                raise KafkaError(msg)
            time.sleep(0.5)

    def _assigned(self, consumer: Any, partitions: Sequence[Any]) -> None:
        for tp in partitions:
            tables = ValidatorTables(batches=self.shared.batches)
            intake = Intake(tables, self.settings, self.codec, self.store, Outputs(self.producer))
            self.held[tp.partition] = Held(tp.partition, intake)
        log.info("inbox partitions held: %s", sorted(self.held))

    def _revoked(self, consumer: Any, partitions: Sequence[Any]) -> None:
        for tp in partitions:
            self.held.pop(tp.partition, None)
        log.info("inbox partitions held: %s", sorted(self.held))

    # ---- reading -----------------------------------------------------------------------------
    def _read_shared(self) -> None:
        for m in self.reader.consume(1000, timeout=0.02):
            if m.error() is not None:
                continue
            topic, key, value, headers = m.topic(), m.key(), m.value(), m.headers()
            position = f"{topic}:{m.partition()}:{m.offset()}"
            if topic == self.topics.sot_batches:
                found = self.opener.manifests(value, position, key)
                if self.opener.open_rounds(found, position, lambda _: "a repeat is not served by several workers yet"):
                    self.meter.round_opened(key)
                    self._expire()
                continue
            if topic == self.topics.sot_labels:
                self.opener.note_labels(self.opener.manifests(value, position, key))
                continue
            if topic == self.topics.miner_registry:
                self._register(key, value, headers, position)
                continue
            purpose = PARTIALS_PURPOSE if topic == self.topics.validator_partials else STEPS_PURPOSE
            refused = verified(self.public_key, purpose, key, value, headers)
            if refused is not None:
                log.warning("%s dropped: %s", position, refused)
                continue
            if topic == self.topics.validator_partials:
                day = date_of_key((key or b"").decode(errors="replace").split(":", 1)[0])  # signed: date:miner
                if day is None or value is None:
                    log.warning("%s dropped: not a partial's key", position)
                elif expired(day, self.cutoff):
                    self._ignore("partial", day, position)
                else:
                    self.partials[digest(value)] = (day, value)  # decoded when a round needs it: 4x smaller
                continue
            try:
                step = decode_step(self.codec, value)
            except CodecError as exc:
                log.warning("%s dropped: %s", position, exc)
                continue
            if expired(step.date, self.cutoff):
                self._ignore("step", step.date, position)
                continue
            ledger = self.ledgers.setdefault(step.round_text, RoundLedger())
            ledger.apply(step, claim_of(headers).signed_at_ms)
            if ledger.judged is step:
                self.closer.judged(step)

    def _register(self, key: bytes | None, value: bytes | None, headers: Any, position: str) -> None:
        """A registration, heartbeat or withdrawal, applied as one worker applies it (by this worker's
        clock: after a restart the topic is read again, so a heartbeat read again counts as fresh
        until ``heartbeat_timeout_s`` passes; a round then waits for a gone miner until its deadline)."""
        try:
            miner_id, what = apply_registration(
                self.shared.registry, self.closer.keys, self.codec, key, value, headers,
                now_ms=int(time.time() * 1000), liveness=self.settings.liveness,
            )  # fmt: skip
        except (CodecError, IdentityError) as exc:  # the single worker dead-letters it; every worker reads it here
            log.warning("registration at %s ignored: %s", position, exc)
            return
        log.info("miner %s %s", miner_id, what)

    def _read_inbox(self) -> None:
        by_partition: dict[int, list[InboxRecord]] = {}
        for m in self.inbox.consume(self.settings.take_size, timeout=0.05):
            if m.error() is not None:
                continue
            held = self.held.get(m.partition())
            if held is None:
                continue
            held.position = m.offset() + 1
            mark = watermark_of(self.public_key, m.key(), m.value(), m.headers())
            if mark is not None:
                held.watermark = max(held.watermark, mark)
                continue
            record = InboxRecord.from_message(m.key(), m.value(), m.headers(), m.topic(), m.partition(), m.offset())
            refused = forwarded_by_bridge(self.public_key, record, m.headers())
            if refused is not None:
                log.warning("inbox record at %s:%d dropped: %s", m.topic(), m.offset(), refused)
                continue
            day = (m.key() or b"").decode(errors="replace").split(":", 1)[0]
            if expired(day, self.cutoff):
                self._ignore("inbox record", dt.date.fromisoformat(day), f"{m.topic()}:{m.partition()}:{m.offset()}")
                continue
            if date_of_key(day) is not None:
                held.first.setdefault(day, m.offset())
            seen = claim_of(m.headers()).signed_at_ms
            after = held.watermark or None  # the newest bridge watermark before it here
            by_partition.setdefault(m.partition(), []).append(dataclasses.replace(record, seen_ms=seen, after_ms=after))
        for partition, records in by_partition.items():
            self.held[partition].intake.ingest(records)
            observe_inbox(self.topics.validator_inbox, len(records), max(r.seen_ms or 0 for r in records))
        if by_partition:
            self.health.progressed(f"validated {sum(map(len, by_partition.values()))} inbox records")

    def _whole(self, held: Held) -> bool:
        """Read up to the end it had at assignment and as far as any earlier holder reported."""
        tp = confluent_kafka.TopicPartition(self.topics.validator_inbox, held.partition)
        if held.target < 0:
            committed = self.inbox.committed([tp], timeout=10)[0].offset
            held.target = self.inbox.get_watermark_offsets(tp, timeout=10)[1]
            held.position = max(held.position, committed if committed >= 0 else 0)
        reported = max((lg.offsets.get(held.partition, -1) for lg in self.ledgers.values()), default=-1)
        return held.position >= max(held.target, reported)

    def _caught_up(self, held: Held) -> bool:
        tp = confluent_kafka.TopicPartition(self.topics.validator_inbox, held.partition)
        return bool(held.position >= self.inbox.get_watermark_offsets(tp, cached=True)[1])

    # ---- a partition's part ------------------------------------------------------------------
    def _progress(self, rkey: RoundKey, ledger: RoundLedger, held: Held, now_ms: int) -> None:
        miners = []
        for key, st in items_with_prefix(held.intake.tables.stats, rkey.prefix):
            chunks = st.get("chunks", [])
            alerts = sum(1 for c in chunks if c.startswith(ALERT + SEP))
            marker = st.get("complete") or {}
            miners.append(
                MinerStep(
                    key.split(SEP)[2],
                    alerts,
                    len(chunks) - alerts,
                    int(marker.get("alert_chunks", -1)),
                    int(marker.get("cluster_chunks", -1)),
                )
            )
        content = (rkey.text, tuple(miners), held.position)
        if content == held.sent and time.monotonic() - held.sent_at < self.settings.progress_interval_s:
            return
        if self.settings.close_when_caught_up:
            held.read_until = held.watermark  # the bridge had forwarded everything before it
        elif self._caught_up(held):
            held.read_until = now_ms
        self.send_step(
            Step(rkey.network, rkey.date, ledger.version, PROGRESS, held.partition, "", held.read_until,
                 held.position, tuple(miners))
        )  # fmt: skip
        held.sent, held.sent_at = content, time.monotonic()

    def _ready(self, rkey: RoundKey, ledger: RoundLedger, held: Held) -> None:
        named = []
        shares = partials_of(held.intake, rkey, ledger.version, held.partition, self.codec)
        for share in (piece for whole in shares for piece in split_partial(whole, self.settings.partial_max_bytes)):
            value = encode_partial(self.codec, share)
            headers = signed(self.signer, PARTIALS_PURPOSE, share.key, value, rkey.date)
            self.raw.send(self.topics.validator_partials, share.key, value, headers=headers)
            named.append(MinerStep(share.miner_id, digest=digest(value)))
        self.raw.flush()  # every partial is on the broker before the step that names it
        step = Step(rkey.network, rkey.date, ledger.version, READY, held.partition, offset=held.position,
                    miners=tuple(named))  # fmt: skip
        self.send_step(step)

    def _emit(self, rkey: RoundKey, state: RoundState, ledger: RoundLedger, held: Held) -> bool:
        if ledger.close is None:
            return False
        if rkey.text not in self.ensembles:  # once per round, whatever number of partitions this worker emits
            held_outcome = self.closer.outcomes.get(rkey.text)
            if held_outcome is not None:  # the closer's own evaluation: the same function under the same weights
                outcome = held_outcome[0]
                self.ensembles[rkey.text] = (outcome.miners, outcome.alerts, outcome.clusters)
            else:
                shares = self.shares(ledger)
                if shares is None:
                    return False
                inputs = closing_inputs(rkey, state, self.contents_of(state), shares, ledger.close.expected)
                top_k = self.settings.top_contributors
                self.ensembles[rkey.text] = shared_ensemble(inputs, ledger.weight_map(), top_k)
        miners, alerts, clusters = self.ensembles[rkey.text]
        contents = self.contents_of(state)
        buckets, prefix = self.settings.stack.score_buckets, f"{rkey.date.isoformat()}:"
        for topic, encoder, scores, ids in (
            (self.topics.ensemble_alerts, self.alert_encoder, alerts, contents.alert_ids),
            (self.topics.ensemble_clusters, self.cluster_encoder, clusters, contents.cluster_ids),
        ):
            rows = share_of(ids, held.partition, self.partitions, buckets)
            mine = ids[rows].tolist()
            payloads = encoder.encode(take(scores, rows), miners, mine, rkey.network, rkey.date, ledger.version)
            for key, value in zip(map(prefix.__add__, mine), payloads, strict=True):
                self.producer.send(topic, key, value)
        self.producer.flush()
        self.send_step(Step(rkey.network, rkey.date, ledger.version, EMITTED, held.partition))
        return True

    def _partition_part(self, rkey: RoundKey, state: RoundState, ledger: RoundLedger, held: Held, now: int) -> None:
        ready, emitted = (rkey.text, READY, held.partition), (rkey.text, EMITTED, held.partition)
        if ledger.close is None:
            self._progress(rkey, ledger, held, now)
        elif held.partition not in ledger.ready:
            if ready not in self.sent:
                self._ready(rkey, ledger, held)
                self.sent.add(ready)
        elif (
            ledger.weights is not None
            and held.partition not in ledger.emitted
            and emitted not in self.sent
            and self._emit(rkey, state, ledger, held)
        ):
            self.sent.add(emitted)

    # ---- the loop ----------------------------------------------------------------------------
    def step(self, now_ms: int) -> None:
        for text in sorted(self.shared.batches.keys()):
            if expired(text, self.cutoff):
                continue  # kept as one worker keeps it (small); nothing of it is done again
            state = RoundState.from_value(self.shared.batches.get(text))
            ledger = self.ledgers.setdefault(text, RoundLedger())
            if ledger.done:
                self._finish(text)
                closer = self.held.get(CLOSER_PARTITION)
                if closer is not None and self._whole(closer):
                    self.closer.judge(RoundKey.parse(text), state, ledger, now_ms)
                continue
            if not state.opened or state.failed:
                continue
            rkey = RoundKey.parse(text)
            for held in list(self.held.values()):
                if self._whole(held):
                    self._partition_part(rkey, state, ledger, held, now_ms)
            closer = self.held.get(CLOSER_PARTITION)
            if closer is not None and self._whole(closer):
                self.closer.part(rkey, state, ledger, now_ms)
        if time.monotonic() - self._committed_at > 5.0:
            self._commit()

    def _finish(self, text: str) -> None:
        if text in self.finished:
            return
        self.finished.add(text)
        state = RoundState.from_value(self.shared.batches.get(text))
        self.shared.batches[text] = state.replace(emitted=True, version=max(state.version, 1)).to_value()
        rkey = RoundKey.parse(text)
        for held in self.held.values():
            held.intake.clear_round(rkey, keep_counts=False)
        self.closer.forget(text)  # its partials stay: ground truth evaluates them again
        self.ensembles.pop(text, None)
        log.info("round %s done", text)
        self._commit()

    def _commit(self) -> None:
        """Each held partition's offset past the dates whose every round is done (the rest is read again)."""
        self._committed_at = time.monotonic()
        offsets = []
        for held in self.held.values():
            if held.position < 0:
                continue
            open_dates = [d for d in held.first if not self._date_done(d)]
            offset = min((held.first[d] for d in open_dates), default=held.position)
            offsets.append(confluent_kafka.TopicPartition(self.topics.validator_inbox, held.partition, offset))
        if offsets:
            try:
                self.inbox.commit(offsets=offsets, asynchronous=False)
            except confluent_kafka.KafkaException as exc:  # a rebalance under way: the next commit catches up
                log.warning("inbox commit skipped: %s", exc)

    def _date_done(self, day: str) -> bool:
        rounds = keys_with_prefix(self.shared.batches, day + SEP)
        return bool(rounds) and all(r in self.finished for r in rounds)

    # ---- retention ---------------------------------------------------------------------------
    def _ignore(self, what: str, day: dt.date, position: str) -> None:
        """Log the first record of each kind read for an expired date (a restart reads every old step again)."""
        if (what, day) not in self._ignored:
            self._ignored.add((what, day))
            log.info("%s at %s ignored: %s is an expired date (and the next ones of that date)", what, position, day)

    def _expire(self) -> None:
        """Drop the dates the single worker would drop (``validator.retention``): the held partitions'
        tables, and the steps, partials, outcomes, contents and bookkeeping of those dates' rounds."""
        cutoff = retention_cutoff(self.shared.batches, self.settings.retention_days)
        if cutoff is None or cutoff == self.cutoff:
            return
        self.cutoff = cutoff
        self._ignored.clear()  # bounded: at most one line per kind and date between two expiries
        for held in self.held.values():
            # the replay index too: replays are not served by several workers
            expire_tables(held.intake.tables, held.intake.decoded, cutoff, (*EXPIRING, "index"))
            drop_expired(held.first, cutoff)
        for mapping in (self.ledgers, self.ensembles, self.closer.outcomes):
            drop_expired(mapping, cutoff)
        self.finished = {t for t in self.finished if not expired(t, cutoff)}
        self.sent = {s for s in self.sent if not expired(s[0], cutoff)}
        self.closer.sent = {s for s in self.closer.sent if not expired(s[0], cutoff)}
        self.partials = {d: p for d, p in self.partials.items() if not expired(p[0], cutoff)}
        for text, value in list(self.shared.batches.items()):
            if expired(text, cutoff):
                self.contents.pop(RoundState.from_value(value).manifest_key, None)
        log.info("dates before %s expired", cutoff.isoformat())

    def run(self) -> None:
        if self.inbox is None:
            self._open()
        try:
            while not self.stop.is_set():
                self._read_shared()
                self._read_inbox()
                self.step(int(time.time() * 1000))
        finally:
            self.inbox.close()
            self.reader.close()
            self.raw.flush()


def _bridge_thread(
    settings: ValidatorSettings, signer: Signer, stop: threading.Event, partitions: int
) -> threading.Thread:
    """This worker's bridge (the group ``<app id>-bridge`` shares the miner topics among the workers;
    it routes chunks by bucket over the inbox's ``partitions``)."""
    stack = settings.stack
    gate = Gate(KeyBook({}, settings.miner_keys), stack.topics, signer, unbound_grace_s=settings.unbound_grace_s)
    marker_config = {**client_security(), "bootstrap.servers": stack.bootstrap_servers, "linger.ms": 5}
    markers = MarkerSender(
        lambda: confluent_kafka.Producer(marker_config), stack.topics.validator_inbox, stack.topic_partitions
    )

    async def forward() -> None:
        task = asyncio.ensure_future(
            run_bridge(
                stack.bootstrap_servers, f"{settings.app_id}-bridge", stack.topics,
                BatchProducer(stack.bootstrap_servers), gate, session_timeout_ms=stack.session_timeout_ms,
                max_records=settings.bridge_max_records, fetch_max_wait_ms=settings.bridge_fetch_wait_ms,
                markers=markers if settings.close_when_caught_up else None,
                watermark_interval_s=settings.watermark_interval_s, log_append_time=settings.trust_log_append_time,
                inbox_partitions=partitions,
            )
        )  # fmt: skip
        while not stop.is_set() and not task.done():
            await asyncio.sleep(0.2)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        finally:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("bridge stopped: %s", task.exception())
                stop.set()

    thread = threading.Thread(target=asyncio.run, args=(forward(),), name="bridge", daemon=True)
    thread.start()
    return thread


def _health_thread(
    settings: ValidatorSettings, worker: PartitionedWorker, bridge: threading.Thread, stop: threading.Event
) -> threading.Thread:
    """This worker's ``/health`` and ``/metrics``, announced as ``validator-worker-<pid>`` (several run in one home)."""
    health = worker.health
    health.checks.append(lambda: None if bridge.is_alive() or stop.is_set() else "the bridge stopped")
    health.details.append(
        lambda: {
            "inbox_partitions": sorted(worker.held),
            "of_partitions": worker.partitions,
            # a copy first: the worker's thread changes the table while this one answers
            "rounds_open": sorted(k for k, v in list(worker.shared.batches.items()) if RoundState.from_value(v).open),
            "bridge_alive": bridge.is_alive(),
        }
    )

    async def serve() -> None:
        watcher = asyncio.ensure_future(watch_broker(health, settings.stack.bootstrap_servers))
        routes = {"/health": health.http_answer, "/metrics": metrics_route()}
        try:
            async with HealthServer(routes, port=settings.health_port) as server:
                announced = announce(settings.stack.home, f"validator-worker-{os.getpid()}", server.url)
                log.info("health at %s/health", server.url)
                try:
                    while not stop.is_set():
                        await asyncio.sleep(0.2)
                finally:
                    withdraw(announced)
        finally:
            watcher.cancel()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="health", daemon=True)
    thread.start()
    return thread


def run_partitioned(settings: ValidatorSettings) -> int:
    """Run one worker (its bridge and its inbox partitions) until SIGTERM / Ctrl-C; returns the exit code."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker = PartitionedWorker(settings, stop)
    worker._open()
    bridge = _bridge_thread(settings, worker.signer, stop, worker.partitions)
    served = _health_thread(settings, worker, bridge, stop)
    try:
        worker.run()
    finally:
        stop.set()
        bridge.join(30)
        served.join(10)
    return 0
