"""Benchmark: a batch published -> its ensemble queryable in the gateway, 5 miners, 10k and 100k alerts.

Every service runs as its own process on a fresh local broker (as in ``riskstream demo``). The
baseline, measured in the same run on the same broker, is the transport floor: producing and
consuming the same number of score records (alerts x miners) with raw confluent-kafka.
The baseline's consumer assigns partitions instead of joining a group.
Also prints the peak memory (VmHWM) of every process.

    .venv/bin/python -m bench.bench_end_to_end [--alerts 10000 100000]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import confluent_kafka

from bench.table import print_rows
from ops.demo import Demo, DemoPlan, MinerPlan, isolated_run
from streams.kafka_admin import partitions_of
from streams.stack import LocalStack, free_port, start_broker, stop_process_group, wait_for_broker

MINERS = (
    MinerPlan("miner-a", "honest-a"),
    MinerPlan("miner-b", "honest-b"),
    MinerPlan("miner-c", "honest-b"),
    MinerPlan("miner-d", "random", trained=False),
    MinerPlan("miner-e", "copycat", copy_of="miner-a", trained=False),
)


def _transport_floor(bootstrap: str, records: int) -> float:
    """Seconds to produce + consume ``records`` 80-byte records through the broker."""
    topic = f"floor-{uuid.uuid4().hex[:8]}"
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000})
    payload = b"x" * 80
    started = time.perf_counter()
    for i in range(records):
        while True:
            try:
                producer.produce(topic, payload, key=str(i % 4096))
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": topic})
    partitions = partitions_of(bootstrap, topic)
    consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in partitions])
    seen = 0
    while seen < records:
        seen += sum(1 for m in consumer.consume(10_000, timeout=1.0) if m.error() is None)
    consumer.close()
    return time.perf_counter() - started


def _case(bootstrap: str, tmp: Path, alerts: int, history: int, storage: str = "memory") -> list[dict[str, Any]]:
    namespace = f"b{uuid.uuid4().hex[:6]}."
    home = tmp / namespace
    stack, env = isolated_run(home, bootstrap, namespace)
    plan = DemoPlan.for_today(
        days=1, history=history, alerts=alerts, addresses=alerts * 5, flows=min(alerts * 100, 2_000_000),
        clusters=max(alerts // 20, 1), gateway_port=free_port(), deadline_s=600,
    )  # fmt: skip
    plan = dataclasses.replace(plan, miners=MINERS)
    label = f"{alerts // 1000}k alerts x {len(MINERS)} miners"
    if storage != "memory":
        label += f", {storage} broker log"
    with Demo(plan, stack, env, cwd=home.parent) as demo:
        demo.prepare_history()
        demo.train_miners()
        demo.start_services()
        started = time.perf_counter()
        demo.publish_days()  # generate + upload + announce on sot.batches
        announced = time.perf_counter()
        demo.wait_for_ensembles(plan.days, timeout=1800)
        done = time.perf_counter()
        peaks = demo.processes.peak_rss_mb()
    floor = _transport_floor(bootstrap, alerts * len(MINERS))
    rows = [
        {
            "component": "end-to-end",
            "case": f"batch announced -> ensemble in gateway, {label}",
            "value": round(done - announced, 2),
            "unit": "s",
            "baseline": round(floor, 2),
            "ratio": round((done - announced) / floor, 1),
        },
        {
            "component": "end-to-end",
            "case": f"generate + publish + ensemble in gateway, {label}",
            "value": round(done - started, 2),
            "unit": "s",
        },
    ]
    rows += [
        {"component": "memory", "case": f"peak RSS {name} ({label})", "value": round(mb), "unit": "MiB"}
        for name, mb in sorted(peaks.items())
    ]
    return rows


def run(
    alert_counts: tuple[int, ...] = (10_000, 100_000), durable: tuple[int, ...] = (10_000,)
) -> list[dict[str, Any]]:
    """Each size on the memory engine, and ``durable`` sizes again on the default durable (s3) stack."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        broker = start_broker(port, Path(tmp) / "broker.log")
        try:
            wait_for_broker(f"127.0.0.1:{port}")
            for alerts in alert_counts:
                rows += _case(f"127.0.0.1:{port}", Path(tmp), alerts, history=3)
        finally:
            stop_process_group(broker.pid)
    for alerts in durable:
        with tempfile.TemporaryDirectory() as tmp:
            local = LocalStack(Path(tmp) / "stack", Path(tmp) / "stack" / "stack.env")
            status = local.up()
            try:
                rows += _case(str(status.bootstrap_servers), Path(tmp), alerts, history=3, storage="s3")
            finally:
                local.down()
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--durable", type=int, nargs="*", default=[10_000], help="sizes to run on the s3 log too")
    args = parser.parse_args()
    print_rows(run(tuple(args.alerts), tuple(args.durable)))
