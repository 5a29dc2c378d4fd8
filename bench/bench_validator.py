"""Validator throughput (scores/s, end to end through bridge, Faust agent and ensemble) next to a
raw confluent-kafka consume + Avro decode loop over the same miner topics, in the same run.

    .venv/bin/python -m bench.bench_validator
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import confluent_kafka
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from simulation import adversarial_panel, make_batch, submission_records, write_batch
from streams.codec import AvroCodec
from streams.kafka import BatchProducer
from streams.kafka_admin import ensure_topics, high_watermarks
from streams.objectstore import FileObjectStore
from streams.schema_registry import FileSchemaRegistry
from streams.signing import SCORE, Signer
from streams.stack import free_port, start_broker, stop_process_group, wait_for_broker
from streams.topics import TopicNames

MINERS = ["honest-1", "honest-2", "honest-3", "random", "constant", "copycat"]
SIGNERS = {m: Signer(Ed25519PrivateKey.generate(), m) for m in MINERS}  # miners sign; the validator checks
ALERTS = int(os.environ.get("BENCH_VALIDATOR_ALERTS", "50000"))
CHUNK = 1000


def _prepare(
    topics: TopicNames, codec: AvroCodec, store: FileObjectStore, date: dt.date, n: int
) -> tuple[list[tuple[str, str, bytes, list[tuple[str, bytes]]]], int]:
    """The batch in the store, its event and every miner record, ready to send."""
    now = dt.datetime.now(dt.UTC)
    batch = make_batch(n, date, seed=date.day, published_at=now)
    key = write_batch(store, batch)
    out: list[tuple[str, str, bytes, list[tuple[str, bytes]]]] = [
        (topics.sot_batches, f"{batch.network}:{date}", store.object_created_event(key, 1, "e", now), [])
    ]
    panel = adversarial_panel(batch, seed=1)
    scores = 0
    for miner in MINERS:
        alerts, clusters = panel[miner]
        for k, v in submission_records(codec, batch, miner, alerts, clusters, now, chunk_size=CHUNK):
            signature = SIGNERS[miner].headers(SCORE, k, v, date=date, batch_id=batch.batch_id)
            out.append((topics.miner_scores(miner), k, v, signature))
        scores += len(alerts) + len(clusters)
    return out, scores


def _send(servers: str, records: list[tuple[str, str, bytes, list[tuple[str, bytes]]]]) -> None:
    producer = BatchProducer(servers)
    for topic, key, value, headers in records:
        producer.send(topic, key, value, headers=headers)
    producer.flush()


def _assigned(servers: str, topics: list[str]) -> Any:
    """A consumer on every partition from the beginning: no group join (joins are slow locally)."""
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": servers, "group.id": "bench", "enable.auto.commit": False}
    )
    parts = []
    for topic in topics:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts += [confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in meta.partitions]
    consumer.assign(parts)
    return consumer


def _wait_version(servers: str, topic: str, date: dt.date, codec: AvroCodec, timeout: float = 600) -> float:
    consumer = _assigned(servers, [topic])
    try:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for m in consumer.consume(100, timeout=0.05):
                if m.error() is None and codec.decode(m.value()).record["processing_date"] == date:
                    return time.perf_counter()
        raise RuntimeError(f"no ensemble for {date} within {timeout}s")
    finally:
        consumer.close()


def _stored(servers: str, topic: str) -> int:
    return sum(high_watermarks(servers, topic).values())


def _wait_stored(servers: str, topic: str, count: int, timeout: float = 600) -> float:
    """When the validator's chunk changelog holds ``count`` records: every chunk validated and stored."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _stored(servers, topic) >= count:
            return time.perf_counter()
        time.sleep(0.02)
    raise RuntimeError(f"{topic} did not reach {count} records within {timeout}s")


def _raw_loop(servers: str, topics: TopicNames, codec: AvroCodec, expected: int) -> tuple[float, float]:
    """scores/s of consume + decode over every miner topic: from the call (like the validator's
    figure, fetch start-up included) and from the first record (the pure decode ceiling)."""
    consumer = _assigned(servers, [topics.miner_scores(m) for m in MINERS])
    scores = 0
    started = time.perf_counter()
    first = None
    try:
        end = time.monotonic() + 300
        while scores < expected and time.monotonic() < end:
            for m in consumer.consume(10000, timeout=0.5):
                if m.error() is None:
                    first = first or time.perf_counter()
                    scores += len(codec.decode(m.value()).record.get("scores", ()))
    finally:
        consumer.close()
    finished = time.perf_counter()
    return scores / (finished - started), scores / (finished - (first or started))


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
                VALIDATOR_MINER_KEYS=json.dumps({m: s.public_key for m, s in SIGNERS.items()}),
                VALIDATOR_DEADLINE_S="600",
                VALIDATOR_LOG_LEVEL=os.environ.get("BENCH_VALIDATOR_LOG_LEVEL", "WARNING"),
            )
            log_path = Path(os.environ.get("BENCH_VALIDATOR_LOG", str(root / "worker.log")))
            with log_path.open("wb") as log:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "streams.cli", "validator", "worker"],
                    env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
                )  # fmt: skip
            warm = dt.date(2026, 1, 1)
            _send(servers, _prepare(topics, codec, store, warm, 200)[0])  # worker joined and warm
            _wait_version(servers, topics.ensemble_batches, warm, codec)
            day = dt.date(2026, 1, 2)
            records, scores = _prepare(topics, codec, store, day, ALERTS)
            changelog = "riskstream-validator-chunks-changelog"
            chunks = _stored(servers, changelog) + sum(
                1 for t, k, _, _ in records if t != topics.sot_batches and "complete" not in k
            )
            started = time.perf_counter()
            _send(servers, records)
            stored = _wait_stored(servers, changelog, chunks)
            done = _wait_version(servers, topics.ensemble_batches, day, codec)
            ingest_rate = scores / (stored - started)
            validator_rate = scores / (done - started)
            raw_rate, ceiling = _raw_loop(servers, topics, codec, scores)
        finally:
            if worker is not None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(60)
            stop_process_group(broker.pid)
    case = f"{len(MINERS)} miners x {ALERTS} alerts, chunks of {CHUNK}"
    return [
        {
            "component": "validator",
            "case": f"{case}: streamed in, validated, stored",
            "value": round(ingest_rate),
            "unit": "scores/s",
            "baseline": round(raw_rate),
            "ratio": round(ingest_rate / raw_rate, 3),
        },
        {
            "component": "validator",
            "case": f"{case}: up to the ensemble batch record",
            "value": round(validator_rate),
            "unit": "scores/s",
            "baseline": round(raw_rate),
            "ratio": round(validator_rate / raw_rate, 3),
        },
        {
            "component": "validator",
            "case": f"{case}: ensemble vs decode ceiling (from 1st record)",
            "value": round(validator_rate),
            "unit": "scores/s",
            "baseline": round(ceiling),
            "ratio": round(validator_rate / ceiling, 3),
        },
    ]


def main() -> None:
    rows = run()
    print(f"{'component':<10} {'case':<72} {'value':>10} {'unit':<9} {'baseline':>10} {'ratio':>6}")
    for r in rows:
        print(
            f"{r['component']:<10} {r['case']:<72} {r['value']:>10} {r['unit']:<9} {r['baseline']:>10} {r['ratio']:>6}"
        )


if __name__ == "__main__":
    main()
