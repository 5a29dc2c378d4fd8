"""A running miner on the real local stack: a published date becomes a complete Avro submission."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest
from service_metrics import Sample, metrics_reach

from miner.app import run_miner, train_miner
from miner.settings import MinerSettings
from streams.batch import MANIFEST, snapshot_key
from streams.codec import AvroCodec
from streams.kafka import BatchProducer
from streams.kafka_admin import high_watermarks, list_topics, partitions_of, topic_config
from streams.objectstore import open_store
from streams.schema_registry import FileSchemaRegistry
from streams.settings import StackSettings
from streams.submission import submission_checksum

sot_generator = pytest.importorskip("sot.generator")
sot_publisher = pytest.importorskip("sot.publisher")

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIRST = dt.date(2026, 2, 1)
REPO = Path(__file__).resolve().parents[2]
NETWORK = "ethereum"
SIZE = {"alerts": 300, "addresses": 1200, "flows": 8000, "clusters": 15}


def _read_submission(stack: StackSettings, miner_id: str, date: dt.date, timeout: float = 30.0) -> dict[str, Any]:
    """A plain consumer: every record of the miner's topic, decoded, until the date's marker and chunks are in."""
    codec = AvroCodec(FileSchemaRegistry.default())
    topic = stack.topics.miner_scores(miner_id)
    consumer = confluent_kafka.Consumer({"bootstrap.servers": stack.bootstrap_servers, "group.id": "reader"})
    consumer.assign(
        [
            confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
            for p in partitions_of(stack.bootstrap_servers, topic)
        ]
    )
    found: dict[str, Any] = {"alerts": {}, "clusters": {}, "complete": None, "keys": set()}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                assert message.error() is None
                decoded = codec.decode(message.value())
                record = decoded.record
                if record["processing_date"] != date:
                    continue
                found["keys"].add((message.key() or b"").decode())
                if decoded.name == "riskstream.AlertScoreBatch":
                    found["alerts"][(record["bucket"], record["chunk"])] = record
                elif decoded.name == "riskstream.ClusterScoreBatch":
                    found["clusters"][(record["bucket"], record["chunk"])] = record
                else:
                    assert decoded.name == "riskstream.SubmissionComplete"
                    found["complete"] = record
            complete = found["complete"]
            if (
                complete
                and len(found["alerts"]) == complete["alert_chunks"]
                and len(found["clusters"]) == complete["cluster_chunks"]
            ):
                return found
    finally:
        consumer.close()
    raise AssertionError(f"no complete submission of {miner_id} for {date}: {found['complete']}")


def _errors(stack: StackSettings) -> list[dict[str, Any]]:
    codec = AvroCodec(FileSchemaRegistry.default())
    topic = stack.topics.miner_errors
    consumer = confluent_kafka.Consumer({"bootstrap.servers": stack.bootstrap_servers, "group.id": "reader"})
    consumer.assign(
        [
            confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
            for p in partitions_of(stack.bootstrap_servers, topic)
        ]
    )
    out = []
    try:
        for message in consumer.consume(100, timeout=3.0):
            out.append(codec.decode(message.value()).record | {"_key": (message.key() or b"").decode()})
    finally:
        consumer.close()
    return out


async def test_a_published_date_becomes_a_complete_submission(stack_settings: StackSettings, tmp_path: Any) -> None:
    store = open_store(stack_settings.object_store_url)
    producer = BatchProducer(stack_settings.bootstrap_servers)
    topics = stack_settings.topics
    batches = [sot_generator.generate_batch(NETWORK, FIRST + dt.timedelta(days=i), **SIZE) for i in range(4)]
    for batch in batches[:3]:  # history: snapshots and ground truth, no batch events
        sot_publisher.write_batch(store, batch)
        sot_publisher.publish_labels(store, producer, topics, batch)

    honest = MinerSettings(stack=stack_settings, miner_id="honest", profile="honest-b", model_dir=tmp_path / "m")
    last = FIRST + dt.timedelta(days=2)
    outcome = train_miner(honest, FIRST, last, window_days=7, today=FIRST + dt.timedelta(days=3))
    assert outcome.promoted and outcome.validation_dates == [last.isoformat()]

    # a bad event first (its manifest does not exist), then the real date
    missing = snapshot_key(NETWORK, FIRST - dt.timedelta(days=30), 7, MANIFEST)
    producer.send(topics.sot_batches, "bad", store.object_created_event(missing, 10, "x", dt.datetime.now(dt.UTC)))
    producer.flush()
    manifest = sot_publisher.publish_batch(store, producer, topics, batches[3])

    stats = await asyncio.wait_for(run_miner(honest, max_batches=2), 120)
    assert (stats.submitted, stats.failed) == (1, 1)

    date = batches[3].processing_date
    found = _read_submission(stack_settings, "honest", date)
    complete = found["complete"]
    alerts = [r for _, r in sorted(found["alerts"].items())]
    ids = [i for r in alerts for i in r["alert_ids"]]
    scores = [s for r in alerts for s in r["scores"]]
    ranks = sorted(x for r in alerts for x in r["ranks"])
    clusters = [r for _, r in sorted(found["clusters"].items())]
    cids = [i for r in clusters for i in r["cluster_ids"]]
    cscores = [s for r in clusters for s in r["scores"]]
    assert sorted(ids) == sorted(batches[3].tables["alerts.parquet"]["alert_id"].to_pylist())
    assert ranks == list(range(1, len(ids) + 1))
    assert complete["alert_count"] == len(ids) == SIZE["alerts"]
    assert complete["cluster_count"] == len(cids) == batches[3].tables["clusters.parquet"].num_rows
    assert complete["batch_id"] == manifest.batch_id
    assert complete["checksum"] == submission_checksum(ids, scores, cids, cscores)
    assert set(complete["model_versions"]) == {"alert_scorer", "alert_ranker", "cluster_scorer"}
    assert f"{date.isoformat()}:complete" in found["keys"]
    assert all(0.0 <= s <= 1.0 for s in scores + cscores)

    # both events are committed for the miner's group: a restart resumes after them
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": stack_settings.bootstrap_servers, "group.id": honest.group_id}
    )
    try:
        parts = partitions_of(stack_settings.bootstrap_servers, topics.sot_batches)
        committed = consumer.committed(
            [confluent_kafka.TopicPartition(topics.sot_batches, p) for p in parts], timeout=10
        )
    finally:
        consumer.close()
    ends = high_watermarks(stack_settings.bootstrap_servers, topics.sot_batches)
    assert {tp.partition: max(tp.offset, 0) for tp in committed} == ends

    [error] = _errors(stack_settings)
    assert error["error_type"] == "MissingFileError" and error["batch_key"] == missing
    assert error["_key"] == f"{NETWORK}:{(FIRST - dt.timedelta(days=30)).isoformat()}"

    # a copycat joins later, replays the same events and re-emits the honest miner's scores with noise
    copycat = MinerSettings(
        stack=stack_settings, miner_id="copier", profile="copycat", copy_of="honest", copy_timeout_s=20
    )
    copy_stats = await asyncio.wait_for(run_miner(copycat, max_batches=2), 120)
    assert (copy_stats.submitted, copy_stats.failed) == (1, 1)
    copied = _read_submission(stack_settings, "copier", date)
    copied_scores = {i: s for r in copied["alerts"].values() for i, s in zip(r["alert_ids"], r["scores"], strict=True)}
    assert set(copied_scores) == set(ids)
    assert max(abs(copied_scores[i] - s) for i, s in zip(ids, scores, strict=True)) <= copycat.copy_noise
    producer.flush()


def test_the_cli_miner_serves_until_sigterm(stack_settings: StackSettings, tmp_path: Any) -> None:
    """``riskstream miner run`` as a process: scores a published date, then stops cleanly on SIGTERM."""
    store = open_store(stack_settings.object_store_url)
    producer = BatchProducer(stack_settings.bootstrap_servers)
    batch = sot_generator.generate_batch(NETWORK, FIRST, **SIZE)
    sot_publisher.publish_batch(store, producer, stack_settings.topics, batch)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "RISKSTREAM_BOOTSTRAP_SERVERS": stack_settings.bootstrap_servers,
        "RISKSTREAM_TOPIC_NAMESPACE": stack_settings.topic_namespace,
        "RISKSTREAM_OBJECT_STORE_URL": stack_settings.object_store_url,
        "RISKSTREAM_HOME": str(tmp_path / "home"),
    }
    command = [sys.executable, "-m", "streams.cli", "miner", "run", "--miner-id", "gamer", "--profile", "random"]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        topic = stack_settings.topics.miner_scores("gamer")
        # before any reader names the topic (the local broker creates a topic a reader asks for)
        deadline = time.monotonic() + 60
        while topic not in list_topics(stack_settings.bootstrap_servers) and time.monotonic() < deadline:
            time.sleep(0.2)
        stamped = topic_config(stack_settings.bootstrap_servers, topic).get("message.timestamp.type")
        assert stamped == "LogAppendTime"  # the broker's time orders submissions, not the miner's
        found = _read_submission(stack_settings, "gamer", FIRST, timeout=60)
        assert found["complete"]["alert_count"] == SIZE["alerts"]
        chunks = len(found["alerts"]) + len(found["clusters"]) + 1  # and the completion marker
        expected: dict[Sample, float] = {
            ("riskstream_miner_records_out_total", (("topic", topic),)): float(chunks),
            ("riskstream_miner_batches_total", (("status", "submitted"),)): 1.0,
            ("riskstream_miner_batch_seconds_count", ()): 1.0,
        }
        metrics = metrics_reach(tmp_path / "home", "miner-gamer", expected)  # prometheus-client text
        assert metrics[("riskstream_miner_events_in_total", ())] >= 1
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err.decode()[-2000:]
    assert "1 submitted, 0 failed" in out.decode()
