"""The validator worker as a process on the real local broker: ensemble, deadline, DLQ, replay, restart."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from service_metrics import Sample, metrics_reach

from simulation import (
    SyntheticBatch,
    adversarial_panel,
    make_batch,
    submission_records,
    write_batch,
    write_labels,
)
from streams.codec import AvroCodec
from streams.control import request_replay
from streams.kafka import BatchProducer
from streams.kafka_admin import ensure_topics
from streams.objectstore import FileObjectStore
from streams.schema_registry import FileSchemaRegistry
from streams.settings import StackSettings
from streams.signing import BATCH_HEADER, SCORE, Signer

pytestmark = pytest.mark.integration

DATE = dt.date(2026, 1, 2)
T0 = dt.datetime(2026, 1, 2, 6, 0, tzinfo=dt.UTC)
PANEL = ["constant", "copycat", "honest-1", "honest-2", "honest-3", "random"]
CODEC = AvroCodec(FileSchemaRegistry.default())
SIGNERS = {m: Signer(Ed25519PrivateKey.generate(), m) for m in [*PANEL, "ghost"]}
MINER_KEYS = json.dumps({m: s.public_key for m, s in SIGNERS.items()})  # the production allow-list
OPERATOR = Signer(Ed25519PrivateKey.generate(), "ops-1")


def _env(stack: StackSettings, **validator: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RISKSTREAM_", "VALIDATOR_"))}
    env.update(
        RISKSTREAM_BOOTSTRAP_SERVERS=stack.bootstrap_servers,
        RISKSTREAM_OBJECT_STORE_URL=stack.object_store_url,
        RISKSTREAM_TOPIC_NAMESPACE=stack.topic_namespace,
        RISKSTREAM_HOME=str(stack.home),
        VALIDATOR_APP_ID=f"{stack.topic_namespace}validator",
        VALIDATOR_LOG_LEVEL="INFO",
        VALIDATOR_MINER_KEYS=MINER_KEYS,
        RISKSTREAM_OPERATOR_KEYS=json.dumps({OPERATOR.name: OPERATOR.public_key}),
        **validator,
    )
    return env


WORKERS: list[Any] = []


class Worker:
    def __init__(self, stack: StackSettings, log: Path, **validator: str) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "validator", "worker"],
                env=_env(stack, **validator),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=stack.home.parent,
            )
        WORKERS.append(self)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(10)


@pytest.fixture
def start_worker(stack_settings: StackSettings, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []
    ensure_topics(stack_settings.bootstrap_servers, stack_settings.topics.all_fixed(), 4)

    def start(**validator: str) -> Worker:
        worker = Worker(stack_settings, tmp_path / "worker.log", **validator)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def _assign(servers: str, topic: str) -> Any:
    """A consumer on every partition of ``topic`` from the beginning, with no group join (joins are slow)."""
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": servers, "group.id": "unused", "enable.auto.commit": False}
    )
    deadline = time.monotonic() + 30
    while True:
        meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"topic {topic} never appeared")
        time.sleep(0.5)
    consumer.assign(
        [confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in meta.partitions]
    )
    return consumer


def read_all(
    servers: str, topic: str, wanted: Callable[[list[Any]], bool], timeout: float = 90.0, raw: bool = False
) -> list[Any]:
    """(key, decoded record, value) of ``topic`` until ``wanted(records)`` holds; raw: (key, value, headers)."""
    consumer = _assign(servers, topic)
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while not wanted(found):
            dead = [w for w in WORKERS if w.process.poll() not in (None, 0, -9, -15)]
            if dead:
                raise AssertionError(f"worker exited {dead[0].process.returncode}: {dead[0].log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: condition not met after {timeout}s with {len(found)} records")
            for m in consumer.consume(1000, timeout=0.5):
                if m.error() is None:
                    if raw:
                        found.append((m.key(), m.value(), m.headers() or []))
                    else:
                        found.append((m.key(), CODEC.decode(m.value()).record, m.value()))
    finally:
        consumer.close()
    return found


def publish_batch(stack: StackSettings, batch: SyntheticBatch) -> None:
    store = FileObjectStore(Path(stack.object_store_url.removeprefix("file://")))
    key = write_batch(store, batch)
    producer = BatchProducer(stack.bootstrap_servers)
    event = store.object_created_event(key, 1, "etag", dt.datetime.now(dt.UTC))
    producer.send(stack.topics.sot_batches, f"{batch.network}:{batch.date}", event)
    producer.flush()


def publish_labels(stack: StackSettings, batch: SyntheticBatch) -> None:
    store = FileObjectStore(Path(stack.object_store_url.removeprefix("file://")))
    key = write_labels(store, batch)
    producer = BatchProducer(stack.bootstrap_servers)
    producer.send(stack.topics.sot_labels, f"{batch.network}:{batch.date}", store.object_created_event(key, 1, "e", T0))
    producer.flush()


def submit(
    stack: StackSettings, batch: SyntheticBatch, miners: list[str], extra: Sequence[tuple[str, bytes]] = ()
) -> None:
    panel = adversarial_panel(batch, seed=7)
    producer = BatchProducer(stack.bootstrap_servers)
    topics = stack.topics
    for i, miner in enumerate(miners):
        alerts, clusters = panel[miner]
        at = T0 + dt.timedelta(seconds=10 + i + (100 if miner == "copycat" else 0))
        for key, value in submission_records(CODEC, batch, miner, alerts, clusters, at, buckets=16, chunk_size=50):
            signature = SIGNERS[miner].headers(SCORE, key, value, date=batch.date, batch_id=batch.batch_id)
            producer.send(topics.miner_scores(miner), key, value, headers=signature)
    for key, value in extra:  # unsigned: never charged to the miner whose topic they are on
        producer.send(topics.miner_scores("random"), key, value)
    producer.flush()


def forwarded(stack: StackSettings, batch: SyntheticBatch, markers: int) -> None:
    """The bridge has forwarded ``markers`` completion markers of the batch's date to the inbox (a marker
    forwarded again after a restart counts once: by its source position, signed by the bridge)."""
    key = f"{batch.date}:complete".encode()

    def sources(found: list[Any]) -> set[bytes]:
        return {dict(h).get(BATCH_HEADER, b"") for k, _, h in found if k == key}

    read_all(stack.bootstrap_servers, stack.topics.validator_inbox, lambda f: len(sources(f)) >= markers, raw=True)


def one_by_one(stack: StackSettings, batch: SyntheticBatch, miners: list[str], already: int = 0) -> None:
    """Each miner once the one before it is forwarded, as a copy can only follow what it copies: the
    trusted order (who copied whom, what an earlier submission explains) is then the same in every run.
    Miners forwarded at one instant are ordered by the validator's own draw, which differs by key."""
    for i, miner in enumerate(miners):
        submit(stack, batch, [miner])
        forwarded(stack, batch, already + i + 1)


def test_ensemble_results_dlq_labels_and_replay(
    stack_settings: StackSettings, start_worker: Callable[..., Worker]
) -> None:
    topics, servers = stack_settings.topics, stack_settings.bootstrap_servers
    batch = make_batch(300, DATE, seed=3, published_at=T0)
    worker = start_worker(VALIDATOR_EXPECTED_MINERS='["' + '","'.join(PANEL) + '"]', VALIDATOR_DEADLINE_S="120")
    publish_batch(stack_settings, batch)
    garbage = [("2026-01-02:0003", b"\x00\x00\x00\x00\x09not avro at all"), ("2026-01-02:0004", b"plain text")]
    others = [m for m in PANEL if m != "copycat"]
    submit(stack_settings, batch, others, extra=garbage)
    forwarded(stack_settings, batch, len(others))
    submit(stack_settings, batch, ["copycat"])  # after what it copies is on the broker, as a real copy

    (summary,) = [r for _, r, _ in read_all(servers, topics.ensemble_batches, lambda f: len(f) >= 1)]
    assert summary["trigger"] == "all_complete" and summary["version"] == 1
    weights = {m["miner_id"]: m["weight"] for m in summary["miners"]}
    assert all(weights[m] < 0.01 for m in ("random", "constant", "copycat"))
    alerts = read_all(servers, topics.ensemble_alerts, lambda f: len(f) >= 300)
    assert sorted(r["alert_id"] for _, r, _ in alerts) == batch.alert_ids
    results = {r["miner_id"]: r for _, r, _ in read_all(servers, topics.validator_results, lambda f: len(f) >= 6)}
    assert any("plagiarism" in x for x in results["copycat"]["reasons"])
    assert any("constant" in x for x in results["constant"]["reasons"])
    assert any("random" in x for x in results["random"]["reasons"])
    dead = read_all(servers, topics.dlq("scores"), lambda f: len(f) >= 2, raw=True)
    assert sorted(v for _, v, _ in dead) == sorted(v for _, v in garbage)
    assert all(dict(h)["source_topic"] == topics.miner_scores("random").encode() for _, _, h in dead)

    publish_labels(stack_settings, batch)
    truth = read_all(
        servers, topics.validator_results, lambda f: sum(r["stage"] == "ground_truth" for _, r, _ in f) >= 7
    )
    gt = {r["miner_id"]: r for _, r, _ in truth if r["stage"] == "ground_truth"}
    best = max(gt[f"honest-{i}"]["metrics"]["auc_pr"] for i in (1, 2, 3))
    print(f"ensemble auc_pr {gt['ensemble']['metrics']['auc_pr']:.4f}, best honest {best:.4f}")
    assert gt["ensemble"]["metrics"]["auc_pr"] >= best

    producer = BatchProducer(servers)
    request_replay(producer, topics, batch.network, DATE, OPERATOR)
    batches = read_all(servers, topics.ensemble_batches, lambda f: any(r["version"] == 2 for _, r, _ in f))
    replayed = [r for _, r, _ in batches if r["version"] == 2][0]
    assert replayed["trigger"] == "replay"
    assert {m["miner_id"]: m["weight"] for m in replayed["miners"]} == weights
    both = read_all(servers, topics.ensemble_alerts, lambda f: len(f) >= 600)
    by_version: dict[int, dict[str, float]] = {}
    for _, r, _ in both:
        by_version.setdefault(r["version"], {})[r["alert_id"]] = r["ensemble_score"]
    assert by_version[1] == by_version[2]
    expected: dict[Sample, float] = {
        ("riskstream_validator_records_out_total", (("topic", topics.ensemble_alerts),)): 600.0,
        ("riskstream_validator_ensembles_total", (("trigger", "all_complete"),)): 1.0,
        ("riskstream_validator_ensembles_total", (("trigger", "replay"),)): 1.0,
        ("riskstream_dead_letters_total", (("topic", topics.dlq("scores")),)): 2.0,
        **{("riskstream_validator_miner_weight", (("miner_id", m),)): w for m, w in weights.items()},
    }
    metrics = metrics_reach(stack_settings.home, "validator", expected)  # prometheus-client text
    assert metrics[("riskstream_validator_round_seconds_count", ())] >= 1
    assert metrics[("riskstream_validator_records_in_total", (("topic", topics.validator_inbox),))] > 0
    assert worker.stop() == 0  # SIGTERM stops cleanly


def test_silent_miner_does_not_block_the_deadline(
    stack_settings: StackSettings, start_worker: Callable[..., Worker]
) -> None:
    topics, servers = stack_settings.topics, stack_settings.bootstrap_servers
    batch = make_batch(200, DATE, seed=4, published_at=T0)
    # the deadline counts from the batch event: leave room for a slow worker start on a loaded machine
    start_worker(VALIDATOR_EXPECTED_MINERS='["honest-1","honest-2","ghost"]', VALIDATOR_DEADLINE_S="40")
    submit(stack_settings, batch, ["honest-1", "honest-2"])
    publish_batch(stack_settings, batch)
    (summary,) = [r for _, r, _ in read_all(servers, topics.ensemble_batches, lambda f: len(f) >= 1)]
    miners = {m["miner_id"]: m for m in summary["miners"]}
    assert summary["trigger"] == "deadline"
    assert not miners["ghost"]["completed"] and miners["ghost"]["weight"] == 0.0
    assert miners["honest-1"]["weight"] > 0.3 and miners["honest-2"]["weight"] > 0.3
    alerts = read_all(servers, topics.ensemble_alerts, lambda f: len(f) >= 200)
    assert {r["miner_count"] for _, r, _ in alerts} == {2}


def _changelog_count(servers: str, topic: str) -> int:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": servers, "group.id": f"c-{time.monotonic_ns()}"})
    try:
        meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0
        return sum(
            consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=5)[1]
            for p in meta.partitions
        )
    finally:
        consumer.close()


def test_killed_worker_ends_with_the_uninterrupted_ensemble(
    broker: str, tmp_path: Path, stack_settings: StackSettings
) -> None:
    batch = make_batch(300, DATE, seed=5, published_at=T0)
    miners = ["honest-1", "honest-2", "honest-3", "copycat"]
    expected = '["' + '","'.join(miners) + '"]'
    outputs = []
    for run, kill in (("calm", False), ("killed", True)):
        stack = stack_settings.model_copy(
            update={"topic_namespace": f"{stack_settings.topic_namespace}{run}.", "home": tmp_path / run / "home"}
        )
        (tmp_path / run).mkdir()
        ensure_topics(broker, stack.topics.all_fixed(), 4)
        log = tmp_path / run / "worker.log"
        worker = Worker(stack, log, VALIDATOR_EXPECTED_MINERS=expected, VALIDATOR_DEADLINE_S="300")
        try:
            publish_batch(stack, batch)
            one_by_one(stack, batch, miners[:2])
            if kill:
                changelog = f"{stack.topic_namespace}validator-chunks-changelog"
                deadline = time.monotonic() + 60
                while _changelog_count(broker, changelog) < 10 and time.monotonic() < deadline:
                    time.sleep(0.5)
                assert worker.stop(signal.SIGKILL) == -signal.SIGKILL
                worker = Worker(stack, log, VALIDATOR_EXPECTED_MINERS=expected, VALIDATOR_DEADLINE_S="300")
            one_by_one(stack, batch, miners[2:], already=2)
            found = read_all(broker, stack.topics.ensemble_alerts, lambda f: len(f) >= 300)
            summary = read_all(broker, stack.topics.ensemble_batches, lambda f: len(f) >= 1)
            # aggregated_at is the trusted completion time: when this run's validator saw the markers
            batches = [{k: v for k, v in r.items() if k != "aggregated_at"} for _, r, _ in summary]
            outputs.append((sorted(v for _, _, v in found), batches))
        finally:
            worker.stop()
    assert len(outputs[1][0]) == 300
    assert outputs[0] == outputs[1]


def test_a_validator_down_over_the_deadline_counts_what_arrived_on_time(
    stack_settings: StackSettings, start_worker: Callable[..., Worker]
) -> None:
    """Killed before the deadline, restarted after it: the miner that submitted on time while it was
    down is in the ensemble (the round closes only once the restarted bridge has caught up)."""
    topics, servers = stack_settings.topics, stack_settings.bootstrap_servers
    batch = make_batch(200, DATE, seed=6, published_at=T0)
    settings = {
        "VALIDATOR_EXPECTED_MINERS": '["honest-1","honest-2","ghost"]',
        "VALIDATOR_DEADLINE_S": "45",
        "VALIDATOR_CLOSE_WHEN_CAUGHT_UP": "true",
    }
    worker = start_worker(**settings)
    publish_batch(stack_settings, batch)
    published = time.monotonic()
    submit(stack_settings, batch, ["honest-1"])
    changelog = f"{stack_settings.topic_namespace}validator-stats-changelog"
    while _changelog_count(servers, changelog) < 1:  # the worker has counted honest-1's records
        assert time.monotonic() - published < 40, "the worker did not ingest honest-1 before the deadline"
        time.sleep(0.5)
    assert worker.stop(signal.SIGKILL) == -signal.SIGKILL
    submit(stack_settings, batch, ["honest-2"])  # on time, while no validator runs
    assert time.monotonic() - published < 45
    time.sleep(max(0.0, 47 - (time.monotonic() - published)))  # the deadline passes while it is down
    start_worker(**settings)
    (summary,) = [r for _, r, _ in read_all(servers, topics.ensemble_batches, lambda f: len(f) >= 1, timeout=120)]
    miners = {m["miner_id"]: m for m in summary["miners"]}
    assert summary["trigger"] == "deadline"
    assert miners["honest-2"]["completed"] and miners["honest-2"]["weight"] > 0.3, miners
    assert miners["honest-1"]["completed"] and miners["honest-1"]["weight"] > 0.3, miners
    assert not miners["ghost"]["completed"]
