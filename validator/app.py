"""The validator's one wiring point: Faust app, tables, agents, timer, bridge, producers, store.

    validator = create_validator(ValidatorSettings())
    run_worker(validator)            # blocks; SIGTERM / Ctrl-C stop it cleanly

Agents read raw bytes (``value_serializer="raw"``) and hand whole batches to ``Rounds``;
outputs go through an idempotent confluent-kafka producer and are flushed before Faust commits
the input offsets (at-least-once; every effect is keyed and versioned, so a redelivery repeats
the same bytes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import faulthandler
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import confluent_kafka
import faust

from streams.codec import AvroCodec
from streams.control import ControlError, operator_keys, parse_command
from streams.deadletter import send_dead_letter
from streams.epoch import LostLogError, check_epoch, epoch_present
from streams.errors import CodecError, KafkaError, RiskstreamError
from streams.health import Health, HealthServer, announce, watch_broker, withdraw
from streams.kafka import BatchProducer
from streams.kafka_admin import ensure_topics, topic_config
from streams.monitoring import metrics_route
from streams.objectstore import open_stack_store
from streams.schema_registry import registry_from_url
from streams.signing import CONTROL, REANNOUNCE, VALIDATOR, Signer, SigningProducer, claim_of, load_or_create_key
from streams.topics import MINER_SCORES_CONFIG
from validator import monitoring
from validator.bridge import Gate, InboxRecord, MarkerSender, forwarded_by_bridge, run_bridge
from validator.control import ControlAuthority, read_date
from validator.errors import ControlRefused, ReplayError, ValidatorError
from validator.identity import IdentityError, KeyBook
from validator.monitoring import RoundMeter
from validator.roster import REGISTERED, apply_registration
from validator.rounds import Rounds
from validator.settings import ValidatorSettings
from validator.tables import ValidatorTables, define_tables, source_position
from validator.watermark import Watermarks, watermark_of

log = logging.getLogger(__name__)
STOP_FLUSH_S = 10.0  # a stop waits this long for each producer; the rest is sent again after a restart
STOP_TRACEBACKS_S = 20.0  # a stop slower than this writes every thread's stack to stderr (the log)


@dataclass
class Validator:
    """The assembled service: the Faust app and what its agents share."""

    settings: ValidatorSettings
    app: Any  # faust.App (untyped)
    tables: ValidatorTables
    rounds: Rounds
    producer: BatchProducer
    bridge_producer: BatchProducer
    keys: KeyBook
    gate: Gate
    authority: ControlAuthority
    markers: MarkerSender
    meter: RoundMeter
    health: Health = field(default_factory=lambda: Health("validator"))
    epoch: str = ""  # the broker log's token (streams.epoch), set when the worker starts
    bridge_reading: threading.Event = field(default_factory=threading.Event)  # the bridge read its start backlog
    lost_log: str = ""  # why the worker stopped itself: the broker lost the log under it
    epoch_misses: int = 0  # checks in a row that did not find the token


def _ensure_score_topic(settings: ValidatorSettings, topic: str) -> None:
    """Create a registered miner's score topic now, not at its first submission, stamped by the broker.

    The bridge then reads the topic before any scores arrive on it (a topic that appears with its
    first submission is found up to a second later, and what arrived meanwhile shares one instant),
    and on Kafka the broker's append time, which no miner can set, orders the submissions.
    """
    try:
        ensure_topics(
            settings.stack.bootstrap_servers,
            [topic],
            partitions=settings.stack.topic_partitions,
            replication=settings.stack.replication_factor,
            config=MINER_SCORES_CONFIG,
        )
    except KafkaError as exc:  # e.g. not allowed to create topics: the miner's own creation stands
        log.warning("could not create %s: %s", topic, exc)
    if not settings.trust_log_append_time:
        return
    try:
        stamped = topic_config(settings.stack.bootstrap_servers, topic).get("message.timestamp.type")
    except KafkaError as exc:
        log.warning("could not read the configuration of %s: %s", topic, exc)
        return
    if stamped != MINER_SCORES_CONFIG["message.timestamp.type"]:  # e.g. made by the miner, or before this rule
        log.warning(
            "%s keeps the producer's timestamps (message.timestamp.type=%s): its records are ordered by when the "
            "bridge fetched them; set message.timestamp.type=LogAppendTime on it so the broker's time orders them",
            topic, stamped,
        )  # fmt: skip


def _now_ms() -> int:
    return int(time.time() * 1000)


def _position(event: Any) -> str:
    return source_position(event.message.topic, event.message.partition, event.message.offset)


def _broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()]


def _data_dir(settings: ValidatorSettings) -> Path:
    return Path(settings.data_dir) if settings.data_dir else settings.stack.home / "validator"


def _credentials(stack: Any) -> Any:
    """Faust's SASL credentials from the stack settings (None on a PLAINTEXT broker)."""
    if stack.kafka_security_protocol.upper() == "PLAINTEXT" or not stack.kafka_username:
        return None
    return faust.SASLCredentials(
        username=stack.kafka_username,
        password=stack.kafka_password.get_secret_value(),
        mechanism=stack.kafka_sasl_mechanism,
    )


def create_validator(settings: ValidatorSettings) -> Validator:
    stack = settings.stack
    data_dir = _data_dir(settings)
    data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=_broker_urls(stack.bootstrap_servers),
        broker_credentials=_credentials(stack),
        store=settings.table_store,
        datadir=str(data_dir),
        topic_partitions=stack.topic_partitions,
        topic_replication_factor=stack.replication_factor,
        producer_max_batch_size=settings.changelog_max_batch_size,
        broker_session_timeout=stack.session_timeout_ms / 1000,
        broker_heartbeat_interval=max(stack.session_timeout_ms / 5000, 0.5),
        consumer_auto_offset_reset="earliest",
        web_enabled=settings.web_enabled,
        web_port=settings.web_port,
        web_host="127.0.0.1",
        autodiscover=False,
        stream_wait_empty=False,
    )
    tables = define_tables(app, stack.topic_partitions)
    codec = AvroCodec(registry_from_url(stack.schema_registry_url))
    store = open_stack_store(stack)
    private_store = open_stack_store(stack, private=True)
    signer = Signer(load_or_create_key(settings.key_path), VALIDATOR)
    producer = BatchProducer(stack.bootstrap_servers)
    bridge_producer = BatchProducer(stack.bootstrap_servers)
    # every ensemble, batch and result record carries the validator's signature (Kafka headers)
    # with the bridge in front, a deadline closes a round only once the inbox is read up to it
    marks = Watermarks(stack.topic_partitions) if settings.close_when_caught_up else None
    meter = RoundMeter(codec, stack.topics)
    outputs = meter.wrap(SigningProducer(producer, signer, stack.topics))  # counted after signing
    rounds = Rounds(tables, settings, codec, store, outputs, private_store, marks, signer)
    keys = KeyBook(tables.identities, settings.miner_keys)
    gate = Gate(keys, stack.topics, signer, unbound_grace_s=settings.unbound_grace_s)
    authority = ControlAuthority(
        lambda: operator_keys(stack), per_date=settings.replays_per_date, window_s=settings.replay_window_s
    )
    health = Health("validator", settings.health_max_unreachable_s)
    marker_config = {"bootstrap.servers": stack.bootstrap_servers, "linger.ms": 5, "logger": log}
    markers = MarkerSender(
        lambda: confluent_kafka.Producer(marker_config), stack.topics.validator_inbox, stack.topic_partitions
    )
    validator = Validator(
        settings, app, tables, rounds, producer, bridge_producer, keys, gate, authority, markers, meter, health
    )
    _wire(validator)
    return validator


def _reopener(v: Validator, event: Any) -> Callable[[dt.date], str | None]:
    """Why a repeat announcement of an emitted date must not open a new version (None: an operator sent it)."""

    def reopen(date: dt.date) -> str | None:
        try:
            v.authority.authorise(REANNOUNCE, event.key, event.value, event.message.headers, date, _now_ms())
        except ControlRefused as exc:
            return str(exc)
        return None

    return reopen


def _ready(app: Any) -> bool:
    """Tables are recovered and no rebalance is under way: state can be trusted."""
    return bool(app.tables.recovery.completed.is_set() and not app.rebalancing)


def _wire(v: Validator) -> None:
    app, rounds, settings = v.app, v.rounds, v.settings
    topics = settings.stack.topics
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    inbox = app.topic(topics.validator_inbox, **raw)
    batches = app.topic(topics.sot_batches, **raw)
    labels = app.topic(topics.sot_labels, **raw)
    control = app.topic(topics.validator_control, **raw)
    registry = app.topic(topics.miner_registry, **raw)
    public_key = v.gate.signer.public_key if v.gate.signer is not None else ""

    @app.agent(inbox, name="validate_scores", concurrency=1)  # type: ignore[untyped-decorator]  # faust is untyped
    async def validate_scores(stream: Any) -> None:
        async for events in stream.take_events(settings.take_size, within=settings.take_within_s):
            records = []
            marks: list[tuple[int, int]] = []
            latest = dict(rounds.watermarks.latest) if rounds.watermarks is not None else {}
            monitoring.observe_inbox(topics.validator_inbox, len(events), max(e.message.timestamp for e in events))
            for e in events:
                mark = watermark_of(public_key, e.key, e.value, e.message.headers)
                if mark is not None:  # the bridge has forwarded everything on the broker before ``mark``
                    marks.append((e.message.partition, mark))
                    latest[e.message.partition] = max(mark, latest.get(e.message.partition, mark))
                    continue
                record = InboxRecord.from_message(
                    e.key, e.value, e.message.headers, e.message.topic, e.message.partition, e.message.offset
                )
                refused = forwarded_by_bridge(public_key, record, e.message.headers)
                if refused is None:  # the bridge's signed time is the record's trusted arrival time
                    seen, after = claim_of(e.message.headers).signed_at_ms, latest.get(e.message.partition)
                    records.append(dataclasses.replace(record, seen_ms=seen, after_ms=after))
                else:  # written to the inbox by someone else: it never reaches a round
                    monitoring.REFUSED.inc()
                    log.warning("inbox record at %s dropped: %s", _position(e), refused)
            started = time.perf_counter()
            await rounds.ingest_async(records)
            if rounds.watermarks is not None:
                for partition, mark in marks:  # after the records that came before them
                    rounds.watermarks.advance(partition, mark)
            await rounds.check_async(_now_ms())
            monitoring.BATCH_SECONDS.observe(time.perf_counter() - started)
            v.health.progressed(f"validated {len(records)} inbox records")
            log.debug("inbox batch of %d records in %.3fs", len(records), time.perf_counter() - started)

    @app.agent(batches, name="open_rounds", concurrency=1)  # type: ignore[untyped-decorator]  # faust is untyped
    async def open_rounds(stream: Any) -> None:
        async for event in stream.events():
            monitoring.RECORDS_IN.labels(topics.sot_batches).inc()
            v.meter.round_opened(event.key)
            if await rounds.open_batch_async(event.value, _position(event), event.key, reopen=_reopener(v, event)):
                await rounds.check_async(_now_ms())  # submissions may have arrived before the batch event

    @app.agent(labels, name="judge_labels", concurrency=1)  # type: ignore[untyped-decorator]  # faust is untyped
    async def judge_labels(stream: Any) -> None:
        async for event in stream.events():
            await rounds.note_labels_async(event.value, _position(event), event.key)
            await rounds.check_async(_now_ms())

    @app.agent(registry, name="register_miners", concurrency=1)  # type: ignore[untyped-decorator]  # faust is untyped
    async def register_miners(stream: Any) -> None:
        async for event in stream.events():
            try:
                miner_id, what = apply_registration(
                    v.tables.registry, v.keys, rounds.codec, event.key, event.value, event.message.headers,
                    now_ms=_now_ms(), liveness=settings.liveness,
                )  # fmt: skip
                log.info("miner %s %s", miner_id, what)
                if what == REGISTERED:
                    await asyncio.to_thread(_ensure_score_topic, settings, topics.miner_scores(miner_id))
            except (CodecError, IdentityError) as exc:
                source = InboxRecord(event.key, event.value, event.message.topic, event.message.partition,
                                     event.message.offset)  # fmt: skip
                send_dead_letter(v.producer, topics.dlq("registry"), source.dead_letter(str(exc)))
                await asyncio.to_thread(v.producer.flush)
                log.warning("registration at %s dead-lettered: %s", _position(event), exc)

    @app.agent(control, name="serve_commands", concurrency=1)  # type: ignore[untyped-decorator]  # faust is untyped
    async def serve_commands(stream: Any) -> None:
        async for event in stream.events():
            try:
                command = parse_command(event.value)
                v.authority.authorise(CONTROL, event.key, event.value, event.message.headers, command.date, _now_ms())
                start = v.tables.index.get(command.date.isoformat()) or {}
                if not start:
                    msg = f"no offsets recorded for {command.date}: nothing to replay"
                    raise ReplayError(msg)
                found = await asyncio.to_thread(
                    read_date, settings.stack.bootstrap_servers, start, command.date, command.network, rounds.codec
                )
                # the same gate as on arrival: only what each miner provably sent is replayed
                records = [
                    r for r in found
                    if v.gate.check_record(r.topic, r.partition, r.offset, r.key, r.value, r.signature) is None
                ]  # fmt: skip
                done = await rounds.replay_async(
                    command.network, command.date, records, _position(event), reweigh=command.reweigh
                )
                log.warning("replay of %s %s: %s", command.network, command.date, done)
            except (ValidatorError, ControlError) as exc:
                log.error("control command at %s ignored: %s", _position(event), exc)

    @app.timer(settings.timer_interval_s)  # type: ignore[untyped-decorator]  # faust is untyped
    async def close_rounds() -> None:
        if _ready(app):
            await rounds.check_async(_now_ms())

    @app.timer(settings.epoch_check_s)  # type: ignore[untyped-decorator]  # faust is untyped
    async def check_broker_log() -> None:
        servers, topic = settings.stack.bootstrap_servers, settings.stack.topics.state_epochs
        if not v.epoch or v.health.unreachable_since is not None or v.lost_log:
            return
        try:
            if await asyncio.to_thread(epoch_present, servers, topic, settings.app_id, v.epoch):
                v.epoch_misses = 0
                return
        except RiskstreamError as exc:  # a check that cannot run is retried at the next tick, never a crash
            log.warning("broker log check skipped: %s", exc)
            return
        v.epoch_misses += 1
        if v.epoch_misses < 2:  # a broker still loading its log gets one more look before we stop
            return
        v.lost_log = (
            f"the broker at {servers} lost the log this validator's tables were built on (token {v.epoch[:8]} "
            f"is gone from {topic}): stopping. Restore the broker log; or remove {_data_dir(settings)}, start the "
            "validator again and replay the dates still needed (riskstream replay --from sot)."
        )
        log.critical("%s", v.lost_log)
        os.kill(os.getpid(), signal.SIGTERM)  # the worker's own clean stop

    @app.task  # type: ignore[untyped-decorator]  # faust is untyped
    async def serve_health() -> None:
        v.health.details.append(lambda: {"tables_recovered": _ready(app), "bridge_reading": v.bridge_reading.is_set()})
        watcher = asyncio.ensure_future(watch_broker(v.health, settings.stack.bootstrap_servers))
        try:
            routes = {"/health": v.health.http_answer, "/metrics": metrics_route()}
            async with HealthServer(routes, port=settings.health_port) as server:
                announced = announce(settings.stack.home, "validator", server.url)
                try:
                    await asyncio.Event().wait()  # until the worker stops (cancels this task)
                finally:
                    withdraw(announced)
        finally:
            watcher.cancel()

    @app.task  # type: ignore[untyped-decorator]  # faust is untyped
    async def bridge() -> None:
        await run_bridge(
            settings.stack.bootstrap_servers,
            f"{settings.app_id}-bridge",
            topics,
            v.bridge_producer,
            v.gate,
            session_timeout_ms=settings.stack.session_timeout_ms,
            max_records=settings.bridge_max_records,
            fetch_max_wait_ms=settings.bridge_fetch_wait_ms,
            markers=v.markers if settings.close_when_caught_up else None,
            watermark_interval_s=settings.watermark_interval_s,
            log_append_time=settings.trust_log_append_time,
            on_reading=v.bridge_reading.set,
            assign_matching_s=1.0,  # the one bridge of this worker: new miner topics never pause it
        )


def prepare_topics(settings: ValidatorSettings) -> None:
    """The validator's input and output topics, with the stack's partition count."""
    stack = settings.stack
    ensure_topics(stack.bootstrap_servers, stack.topics.all_fixed(), stack.topic_partitions, stack.replication_factor)


def _epoch_path(settings: ValidatorSettings) -> Path:
    # One token per app id: Faust keeps each app's tables apart in the same data dir, so a second app
    # (another namespace) sharing the dir must not read the first one's token as a lost log.
    return _data_dir(settings) / f"broker-epoch-{settings.app_id}"


def run_worker(validator: Validator) -> int:
    """Run the Faust worker until SIGTERM / Ctrl-C; returns the exit code.

    Refuses to start (``LostLogError``, one line) on a broker that lost the log this validator's
    state was built on, instead of recovering empty tables and emitting a wrong ensemble.
    """
    settings = validator.settings
    prepare_topics(settings)
    validator.epoch = check_epoch(
        settings.stack.bootstrap_servers, settings.stack.topics.state_epochs, settings.app_id, _epoch_path(settings),
        remedy=f"Restore the broker log; or stop the validator, remove {_data_dir(settings)}, start it again and "
        "replay the dates still needed (riskstream replay --from sot).",
    )  # fmt: skip
    worker = _Worker(validator.app, loglevel=settings.log_level, quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = int(exc.code or 0)
    else:
        code = 0
    finally:
        _flush_at_stop(validator.producer, "outputs")
        _flush_at_stop(validator.bridge_producer, "forwarded miner records")
    if validator.lost_log:
        raise LostLogError(validator.lost_log)
    return code


class _Worker(faust.Worker):
    """A stop that hangs says where: every thread's stack goes to the log ``STOP_TRACEBACKS_S`` after
    the signal (a Faust service that does not stop, a worker thread the interpreter waits for)."""

    def _schedule_shutdown(self, sig: signal.Signals) -> None:  # mode's hook for SIGTERM and SIGINT
        super()._schedule_shutdown(sig)
        arm_stop_tracebacks()


def arm_stop_tracebacks(after_s: float = STOP_TRACEBACKS_S) -> None:
    """Every thread's stack to the process's own stderr in ``after_s`` unless it has exited by then.

    The original stream, not ``sys.stderr``: mode replaces that with a logging proxy that has no
    file descriptor, which faulthandler needs.
    """
    if sys.__stderr__ is not None:
        faulthandler.dump_traceback_later(after_s, exit=False, file=sys.__stderr__)


def _flush_at_stop(producer: BatchProducer, what: str) -> None:
    """Flush for at most ``STOP_FLUSH_S``: a stop is bounded, and nothing is lost by it.

    Whatever is still unacknowledged then was produced for an input whose offset is not committed
    yet (agents and the bridge flush before they commit; a round's emission is written to the
    tables only after its flush), so it is read and produced again after a restart.
    """
    try:
        producer.flush(STOP_FLUSH_S)
    except KafkaError as exc:
        log.warning("stopping with %s not flushed, to be sent again after a restart: %s", what, exc)
