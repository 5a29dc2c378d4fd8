"""The miner's one wiring point: builds the store, producer, consumer, codec and registry from settings.

stats = asyncio.run(run_miner(MinerSettings(miner_id="miner-a"), max_batches=1))
paths = train_miner(settings, start, end, window_days=7)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import confluent_kafka
import numpy as np

from miner import monitoring
from miner.agent import AgentStats, MinerAgent
from miner.diagnostics import CheckReport, check_submission, fetch_ensemble
from miner.errors import MinerError, ModelNotFoundError, PeerSubmissionError
from miner.flows import use_arrow_memory_pool
from miner.plugins import make_scorer
from miner.records import heartbeat_record, registration_record
from miner.retraining import Retrainer, record_training
from miner.scorer import PeerSource, ScorerContext
from miner.scoring import BatchScores
from miner.settings import MinerSettings
from miner.submitted import SubmittedBatches
from miner.training import labelled_history
from miner.training_run import TrainingOutcome, train_validated
from streams.batch import MANIFEST, Manifest, labels_for, read_batch, snapshot_key
from streams.codec import AvroCodec
from streams.control import OperatorCheck, operator_keys
from streams.errors import CodecError
from streams.health import Health, HealthServer, announce, watch_broker, withdraw
from streams.kafka import BatchProducer, Message
from streams.kafka_admin import ensure_topics, partitions_of
from streams.kafka_readers import AsyncBatchConsumer, RangeReader
from streams.monitoring import CountingProducer, metrics_route
from streams.objectstore import open_stack_store
from streams.progress import say
from streams.records import ALERT_SCORE_BATCH, CLUSTER_SCORE_BATCH, SUBMISSION_COMPLETE
from streams.schema_registry import registry_from_url
from streams.signing import HEARTBEAT, REANNOUNCE, REGISTRATION, WITHDRAWAL, Signer, load_or_create_key
from streams.topics import MINER_SCORES_CONFIG, TopicNames

log = logging.getLogger("miner.app")


class TopicPeerReader:
    """Reads another miner's submission for one batch from its score topic (used by copycats).

    Scans the topic from the beginning and keeps the chunks of the batch's date and batch id:
    offsets-by-time cannot be trusted on every broker.
    """

    def __init__(self, bootstrap_servers: str, topics: TopicNames, codec: AvroCodec) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.codec = codec

    def read(self, miner_id: str, manifest: Manifest, timeout_s: float) -> BatchScores:
        topic = self.topics.miner_scores(miner_id)
        deadline = time.monotonic() + timeout_s
        partitions: list[int] = []
        while not partitions and time.monotonic() < deadline:
            partitions = partitions_of(self.bootstrap_servers, topic)
            if not partitions:
                time.sleep(0.5)
        alerts: dict[tuple[int, int], tuple[list[str], list[float]]] = {}
        clusters: dict[tuple[int, int], tuple[list[str], list[float]]] = {}
        complete: dict[str, Any] | None = None
        starts = {topic: dict.fromkeys(partitions, confluent_kafka.OFFSET_BEGINNING)}
        with RangeReader(self.bootstrap_servers, starts) as reader:
            for batch in reader.batches(max(deadline - time.monotonic(), 0.0), to_end=False, max_records=1000):
                for message in batch:
                    try:
                        decoded = self.codec.decode(message.value)
                    except CodecError:
                        continue
                    r = decoded.record
                    if (r.get("batch_id"), r.get("processing_date"), r.get("network")) != (
                        manifest.batch_id, manifest.processing_date, manifest.network,
                    ):  # fmt: skip
                        continue
                    if decoded.name == ALERT_SCORE_BATCH:
                        alerts[(r["bucket"], r["chunk"])] = (r["alert_ids"], r["scores"])
                    elif decoded.name == CLUSTER_SCORE_BATCH:
                        clusters[(r["bucket"], r["chunk"])] = (r["cluster_ids"], r["scores"])
                    elif decoded.name == SUBMISSION_COMPLETE:
                        complete = r
                if complete and len(alerts) >= complete["alert_chunks"] and len(clusters) >= complete["cluster_chunks"]:
                    return BatchScores(
                        [i for k in sorted(alerts) for i in alerts[k][0]],
                        np.array([s for k in sorted(alerts) for s in alerts[k][1]], dtype=np.float64),
                        [i for k in sorted(clusters) for i in clusters[k][0]],
                        np.array([s for k in sorted(clusters) for s in clusters[k][1]], dtype=np.float64),
                        dict(complete["model_versions"]),
                    )
        msg = f"no complete submission for {manifest.batch_id} on {topic} within the copy timeout"
        raise PeerSubmissionError(msg)


def miner_signer(settings: MinerSettings) -> Signer:
    """The miner's signer, from its key file (created on first use: ``riskstream miner keygen`` does it ahead)."""
    return Signer(load_or_create_key(settings.key_path), settings.miner_id)


def scorer_context(
    settings: MinerSettings, peers: PeerSource | None = None, stopping: threading.Event | None = None
) -> ScorerContext:
    return ScorerContext(
        miner_id=settings.miner_id,
        network=settings.network,
        model_dir=settings.models_path,
        seed=settings.seed,
        threads=settings.threads,
        settings=settings,
        peers=peers,
        stopping=stopping or threading.Event(),
    )


def build_agent(settings: MinerSettings, producer: BatchProducer) -> MinerAgent:
    stack = settings.stack
    codec = AvroCodec(registry_from_url(stack.schema_registry_url))
    context = scorer_context(settings, TopicPeerReader(stack.bootstrap_servers, stack.topics, codec))
    return MinerAgent(
        settings,
        store=open_stack_store(stack),
        producer=producer,
        codec=codec,
        scorer=make_scorer(settings.scorer_spec, context),
        stopping=context.stopping,  # scorers that wait see the miner stop
        signer=miner_signer(settings),
        reannounced=_operator_reannounced(settings),
        submitted=SubmittedBatches(settings.submitted_path),
    )


def _operator_reannounced(settings: MinerSettings) -> Callable[[Message], bool]:
    """Whether an operator signed a repeat batch announcement (``riskstream replay --from sot``)."""
    check = OperatorCheck(lambda: operator_keys(settings.stack))

    def reannounced(message: Message) -> bool:
        return check.signed(REANNOUNCE, message.key, message.value, message.headers, int(time.time() * 1000))

    return reannounced


def check_models(settings: MinerSettings) -> str | None:
    """Why the miner's scorer cannot score yet (no trained model), or None when it can."""
    scorer = make_scorer(settings.scorer_spec, scorer_context(settings))
    if not scorer.trainable:
        return None
    try:
        scorer.load(settings.models_path)
    except ModelNotFoundError as exc:
        return str(exc)
    return None


async def run_miner(settings: MinerSettings, *, max_batches: int | None = None) -> AgentStats:
    """Serve ``sot.batches`` until SIGINT/SIGTERM (or ``max_batches`` handled batches)."""
    use_arrow_memory_pool(settings.arrow_memory_pool)
    stack = settings.stack
    topics = stack.topics
    missing = check_models(settings)
    if missing:
        say(
            f"miner {settings.miner_id}: {missing}; its batches will be reported as errors until "
            "`riskstream miner train` runs"
        )
    fixed = [topics.sot_batches, topics.sot_labels, topics.miner_errors, topics.miner_registry]
    ensure_topics(stack.bootstrap_servers, fixed, stack.topic_partitions, stack.replication_factor)
    ensure_topics(
        stack.bootstrap_servers,
        [topics.miner_scores(settings.miner_id)],
        stack.topic_partitions,
        stack.replication_factor,
        config=MINER_SCORES_CONFIG,
    )
    producer = BatchProducer(stack.bootstrap_servers)
    agent = build_agent(settings, producer)
    with contextlib.suppress(ModelNotFoundError):
        await asyncio.to_thread(agent.load_models)
    agent.producer = CountingProducer(producer, monitoring.RECORDS_OUT)  # submissions and error reports
    _announce(settings, agent, producer)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not in the main thread
            loop.add_signal_handler(sig, agent.stop.set)
    health = Health(f"miner-{settings.miner_id}", settings.health_max_unreachable_s)
    consumer = AsyncBatchConsumer(
        stack.bootstrap_servers,
        settings.group_id,
        [topics.sot_batches],
        session_timeout_ms=stack.session_timeout_ms,
        max_records=1,  # one event per commit: a batch takes seconds to score
        on_progress=health.progressed,
    )
    beating = asyncio.create_task(_heartbeats(settings, agent, producer))
    health.details.append(lambda: {"lag": {topics.sot_batches: consumer.lag()}})
    watcher = asyncio.create_task(watch_broker(health, stack.bootstrap_servers), name="watch_broker")
    retrainer = Retrainer(settings, agent, agent.store)
    retraining: asyncio.Task[None] | None = None
    done_serving = asyncio.Event()
    try:
        routes = {"/health": health.http_answer, "/metrics": metrics_route()}
        async with HealthServer(routes, port=settings.health_port) as server, consumer:
            announced = announce(stack.home, health.service, server.url)
            if settings.retrain and agent.scorer.trainable:
                retraining = asyncio.create_task(_listen_for_labels(settings, retrainer, done_serving))
            say(f"miner {settings.miner_id} ({agent.scorer.name}) serving {topics.sot_batches} -> {agent.topic}")
            try:
                stats = await agent.run(consumer, max_batches=max_batches)
                stats.retrainings = retrainer.results
                return stats
            finally:
                withdraw(announced)
    finally:
        done_serving.set()
        if retraining is not None:
            await asyncio.gather(retraining, return_exceptions=True)
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        if max_batches is None and agent.signer is not None:  # a miner that stops serving withdraws
            key = settings.miner_id
            producer.send(topics.miner_registry, key, None, headers=agent.signer.headers(WITHDRAWAL, key, None))
        producer.flush()


async def _listen_for_labels(settings: MinerSettings, retrainer: Retrainer, stop: asyncio.Event) -> None:
    """``sot.labels`` in the miner's own labels group: each labelled date counts towards a retraining."""
    stack = settings.stack
    labels = AsyncBatchConsumer(
        stack.bootstrap_servers,
        f"{settings.group_id}-labels",
        [stack.topics.sot_labels],
        session_timeout_ms=stack.session_timeout_ms,
        max_records=100,
    )
    async with labels:
        await retrainer.run(labels, stop)


async def _heartbeats(settings: MinerSettings, agent: MinerAgent, producer: BatchProducer) -> None:
    """A signed heartbeat every ``heartbeat_s`` while serving: the validator waits only for live miners."""
    signer = agent.signer
    if signer is None:
        return
    while True:
        await asyncio.sleep(settings.heartbeat_s)
        record = heartbeat_record(miner_id=settings.miner_id, sent_at=dt.datetime.now(dt.UTC))
        value = agent.codec.encode(record.schema, record.value)
        producer.send(
            settings.stack.topics.miner_registry,
            record.key,
            value,
            headers=signer.headers(HEARTBEAT, record.key, value),
        )
        await asyncio.to_thread(producer.flush)


def _announce(settings: MinerSettings, agent: MinerAgent, producer: BatchProducer) -> None:
    """Register with the validator: it then waits for this miner's submissions (until its deadline)."""
    scorer = agent.scorer
    signer = agent.signer
    record = registration_record(
        miner_id=settings.miner_id,
        profile=scorer.name,
        network=settings.network,
        model_versions={"alert_scorer": scorer.version} if scorer.version else {},
        registered_at=dt.datetime.now(dt.UTC),
        public_key=signer.public_key if signer is not None else "",
    )
    value = agent.codec.encode(record.schema, record.value)
    headers = signer.headers(REGISTRATION, record.key, value) if signer is not None else None
    producer.send(settings.stack.topics.miner_registry, record.key, value, headers=headers)
    producer.flush()


def train_miner(
    settings: MinerSettings,
    start: dt.date,
    end: dt.date,
    *,
    window_days: int,
    network: str | None = None,
    today: dt.date | None = None,
) -> TrainingOutcome:
    """Fit the miner's scorer on the published ground truth of [start, end], validated on the newest dates.

    The candidate is compared with the model already saved (if any); when promoted it is refitted
    on every date and saved.
    """
    if network is not None and network != settings.network:
        settings = settings.model_copy(update={"network": network})
    scorer = make_scorer(settings.scorer_spec, scorer_context(settings))
    if not scorer.trainable:
        msg = f"scorer {scorer.name!r} scores without models: nothing to train"
        raise MinerError(msg)
    use_arrow_memory_pool(settings.arrow_memory_pool)
    store = open_stack_store(settings.stack)
    days = labelled_history(store, settings.network, start, end, window_days, today=today)
    current = None
    with contextlib.suppress(ModelNotFoundError):
        current = scorer.load(settings.models_path)
    outcome = train_validated(scorer, days, current=current, max_auc_pr_drop=settings.retrain_max_auc_pr_drop)
    if outcome.scorer is not None:
        version = outcome.scorer.save(settings.models_path)
        record_training(settings.models_path, outcome.train_dates + outcome.validation_dates)
        say(f"saved {version} into {settings.models_path}")
    else:
        say(f"not promoted: {outcome.reason}")
    return outcome


def check_miner(
    settings: MinerSettings,
    date: dt.date,
    *,
    window_days: int,
    gateway_url: str | None,
    precision_k: int = 100,
) -> CheckReport:
    """Score the published batch of ``date`` with the miner's scorer, without sending anything, and judge it."""
    store = open_stack_store(settings.stack)
    batch = read_batch(store, snapshot_key(settings.network, date, window_days, MANIFEST))
    scorer = make_scorer(settings.scorer_spec, scorer_context(settings))
    if scorer.trainable:
        scorer = scorer.load(settings.models_path)
    labels = labels_for(store, batch.manifest)
    ensemble = fetch_ensemble(gateway_url, settings.network, date) if labels is not None and gateway_url else None
    return check_submission(
        scorer,
        batch,
        labels,
        codec=AvroCodec(registry_from_url(settings.stack.schema_registry_url)),
        ensemble=ensemble,
        ensemble_source=f"the gateway REST API ({gateway_url}/ensemble/scores/alerts/{date})",
        k=precision_k,
    )
