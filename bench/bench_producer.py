"""Benchmark: what the project's producer costs a record, against a bare confluent-kafka producer.

Every signed output of the validator (~1M ensemble records a version at 1M alerts), every record
the bridge forwards and every miner chunk goes through ``streams.kafka.BatchProducer``, which
keeps each record until it is acknowledged (to send it again after a broker restart). Both sides
send the same records (a ~120-byte value and the four signature headers of an output record)
to one local broker with the same client settings, then flush; the figure is the process's CPU
time a record, best of a few rounds.

    .venv/bin/python -m bench.bench_producer
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import confluent_kafka

from streams.kafka import BatchProducer
from streams.kafka_admin import ensure_topics
from streams.stack import free_port, start_broker, stop_process_group, wait_for_broker

RECORDS = 100_000
ROUNDS = 3
TOPIC = "bench.producer"
HEADERS: list[tuple[str, bytes]] = [
    ("riskstream-signer", b"validator"),
    ("riskstream-signed-at", b"1764650000000"),
    ("riskstream-date", b"2026-12-02"),
    ("riskstream-signature", b"ab" * 64),
]
BARE_HEADERS: list[tuple[str, str | bytes | None]] = [(name, data) for name, data in HEADERS]  # the binding's type
VALUE = b"x" * 120


def _cpu_per_record(send_all: Callable[[list[str]], None]) -> float:
    best = float("inf")
    for round_ in range(ROUNDS):
        keys = [f"2026-12-02:{round_}:{i:07d}" for i in range(RECORDS)]
        started = time.process_time()
        send_all(keys)
        best = min(best, (time.process_time() - started) / RECORDS)
    return best * 1e6


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-producer-") as tmp:
        port = free_port()
        broker = start_broker(port, Path(tmp) / "broker.log")
        servers = f"127.0.0.1:{port}"
        try:
            wait_for_broker(servers)
            ensure_topics(servers, [TOPIC], partitions=4)
            ours = BatchProducer(servers)

            def through_ours(keys: list[str]) -> None:
                for key in keys:
                    ours.send(TOPIC, key, VALUE, headers=HEADERS)
                ours.flush()

            # the same client settings, nothing kept per record: what librdkafka and its binding cost
            bare = confluent_kafka.Producer({k: v for k, v in ours._config.items() if k != "error_cb"})

            def through_bare(keys: list[str]) -> None:
                for i, key in enumerate(keys):
                    bare.produce(TOPIC, value=VALUE, key=key, headers=BARE_HEADERS)
                    if i % 64 == 0:
                        bare.poll(0)
                bare.flush()

            baseline = _cpu_per_record(through_bare)
            value = _cpu_per_record(through_ours)
        finally:
            stop_process_group(broker.pid)
    row = {"component": "producer", "unit": "us"}
    return [
        {**row, "case": "bare confluent-kafka produce + flush, CPU a record (baseline)", "value": round(baseline, 2),
         "baseline": round(baseline, 2), "ratio": 1.0},
        {**row, "case": "BatchProducer.send + flush (kept until acknowledged), CPU a record", "value": round(value, 2),
         "baseline": round(baseline, 2), "ratio": round(value / baseline, 2)},
    ]  # fmt: skip


if __name__ == "__main__":
    from bench.table import print_rows

    print_rows(run())
