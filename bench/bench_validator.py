"""Validator throughput (scores/s, end to end through bridge, Faust agent and ensemble) next to a
raw confluent-kafka consume + Avro decode loop over the same miner topics, in the same run.

    .venv/bin/python -m bench.bench_validator
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import confluent_kafka

from streams.codec import AvroCodec
from streams.kafka import BatchProducer, ensure_topics
from streams.objectstore import FileObjectStore
from streams.schema_registry import FileSchemaRegistry
from streams.stack import free_port, start_broker, stop_process_group, wait_for_broker
from streams.topics import TopicNames
from validator.synthetic import adversarial_panel, make_batch, submission_records, write_batch

MINERS = ["honest-1", "honest-2", "honest-3", "random", "constant", "copycat"]
ALERTS = int(os.environ.get("BENCH_VALIDATOR_ALERTS", "50000"))
CHUNK = 1000


def _submit(servers: str, topics: TopicNames, codec: AvroCodec, store: FileObjectStore, date: dt.date, n: int) -> int:
    batch = make_batch(n, date, seed=date.day, published_at=dt.datetime.now(dt.UTC))
    key = write_batch(store, batch)
    producer = BatchProducer(servers)
    producer.send(
        topics.sot_batches, f"{batch.network}:{date}", store.object_created_event(key, 1, "e", dt.datetime.now(dt.UTC))
    )
    producer.flush()
    panel = adversarial_panel(batch, seed=1)
    scores = 0
    for miner in MINERS:
        alerts, clusters = panel[miner]
        for k, v in submission_records(
            codec, batch, miner, alerts, clusters, dt.datetime.now(dt.UTC), chunk_size=CHUNK
        ):
            producer.send(topics.miner_scores(miner), k, v)
        scores += len(alerts) + len(clusters)
    producer.flush()
    return scores


def _wait_version(servers: str, topic: str, date: dt.date, codec: AvroCodec, timeout: float = 600) -> float:
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": servers, "group.id": f"b-{time.monotonic_ns()}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    try:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for m in consumer.consume(100, timeout=0.2):
                if m.error() is None and codec.decode(m.value()).record["processing_date"] == date:
                    return time.perf_counter()
        raise RuntimeError(f"no ensemble for {date} within {timeout}s")
    finally:
        consumer.close()


def _raw_loop(servers: str, topics: TopicNames, codec: AvroCodec, expected: int) -> float:
    """scores/s of consume + decode over every miner topic from the beginning."""
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": servers, "group.id": f"raw-{time.monotonic_ns()}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topics.miner_scores(m) for m in MINERS])
    scores = 0
    started = None
    try:
        end = time.monotonic() + 300
        while scores < expected and time.monotonic() < end:
            for m in consumer.consume(10000, timeout=0.5):
                if m.error() is not None:
                    continue
                if started is None:
                    started = time.perf_counter()
                record = codec.decode(m.value()).record
                scores += len(record.get("scores", ()))
    finally:
        consumer.close()
    assert started is not None
    return scores / (time.perf_counter() - started)


def run() -> list[dict[str, Any]]:
    codec = AvroCodec(FileSchemaRegistry.default())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        port = free_port()
        broker = start_broker(port, root / "broker.log")
        servers = f"127.0.0.1:{port}"
        worker = None
        try:
            wait_for_broker(servers)
            topics = TopicNames("bench.")
            ensure_topics(servers, [*topics.all_fixed(), *(topics.miner_scores(m) for m in MINERS)], 4)
            store = FileObjectStore(root / "store")
            env = {k: v for k, v in os.environ.items() if not k.startswith(("RISKSTREAM_", "VALIDATOR_"))}
            env.update(
                RISKSTREAM_BOOTSTRAP_SERVERS=servers,
                RISKSTREAM_OBJECT_STORE_URL=f"file://{root / 'store'}",
                RISKSTREAM_TOPIC_NAMESPACE="bench.",
                RISKSTREAM_HOME=str(root / "home"),
                VALIDATOR_EXPECTED_MINERS='["' + '","'.join(MINERS) + '"]',
                VALIDATOR_DEADLINE_S="600",
            )
            worker = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "validator", "worker"],
                env=env, stdout=subprocess.DEVNULL, stderr=(root / "worker.log").open("wb"), start_new_session=True,
            )  # fmt: skip
            warm = dt.date(2026, 1, 1)
            _submit(servers, topics, codec, store, warm, 200)  # worker joined and warm
            _wait_version(servers, topics.ensemble_batches, warm, codec)
            day = dt.date(2026, 1, 2)
            started = time.perf_counter()
            scores = _submit(servers, topics, codec, store, day, ALERTS)
            done = _wait_version(servers, topics.ensemble_batches, day, codec)
            validator_rate = scores / (done - started)
            raw_rate = _raw_loop(servers, topics, codec, scores)
        finally:
            if worker is not None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(60)
            stop_process_group(broker.pid)
    return [
        {
            "component": "validator",
            "case": f"{len(MINERS)} miners x {ALERTS} alerts, chunks of {CHUNK}, end to end",
            "value": round(validator_rate),
            "unit": "scores/s",
            "baseline": round(raw_rate),
            "ratio": round(validator_rate / raw_rate, 3),
        }
    ]


def main() -> None:
    rows = run()
    print(f"{'component':<10} {'case':<52} {'value':>10} {'unit':<9} {'baseline':>10} {'ratio':>6}")
    for r in rows:
        print(
            f"{r['component']:<10} {r['case']:<52} {r['value']:>10} {r['unit']:<9} {r['baseline']:>10} {r['ratio']:>6}"
        )


if __name__ == "__main__":
    main()
