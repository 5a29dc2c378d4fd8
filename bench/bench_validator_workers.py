"""Validator throughput with one and with two workers of one app (``VALIDATOR_PARTITIONED``), on the
same records (every miner's signed chunks and markers of one day), in the same run.

Each run has its own namespace (inbox, steps, partials are the app's own): the records are
sent once per run, identical; the figure is scores/s from the first record sent to the
ensemble batch record. The one-worker Faust app runs the same day as a reference.

Each worker's CPU time (utime + stime, its bridge thread included) over the same span says
what the wall ratio cannot on a machine whose cores the workers, their bridges, the broker and
the sender share: one worker's CPU over the busier of two workers' CPU is the speed-up two
workers would give on cores of their own, if the round stays CPU-bound (a projection).

    .venv/bin/python -m bench.bench_validator_workers
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

from bench.bench_validator import ALERTS, CHUNK, MINERS, SIGNERS, _prepare, _send, _wait_version
from ops.processes import proc_cpu_seconds
from streams.codec import AvroCodec
from streams.kafka_admin import ensure_topics
from streams.objectstore import FileObjectStore
from streams.schema_registry import FileSchemaRegistry
from streams.signing import VALIDATOR, generate_key, key_path
from streams.stack import free_port, start_broker, stop_process_group, wait_for_broker
from streams.topics import TopicNames

PARTITIONS = 4


def _workers(servers: str, root: Path, namespace: str, count: int, partitioned: bool) -> list[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RISKSTREAM_", "VALIDATOR_"))}
    env.update(
        RISKSTREAM_BOOTSTRAP_SERVERS=servers,
        RISKSTREAM_OBJECT_STORE_URL=f"file://{root / 'store'}",
        RISKSTREAM_TOPIC_NAMESPACE=namespace,
        RISKSTREAM_TOPIC_PARTITIONS=str(PARTITIONS),
        RISKSTREAM_HOME=str(root / namespace),
        VALIDATOR_APP_ID=f"{namespace}validator",
        VALIDATOR_EXPECTED_MINERS=json.dumps(MINERS),
        VALIDATOR_MINER_KEYS=json.dumps({m: s.public_key for m, s in SIGNERS.items()}),
        VALIDATOR_DEADLINE_S="600",
        VALIDATOR_PARTITIONED="true" if partitioned else "false",
        # the partitioned workers say at INFO which partitions they hold (a line per rebalance and round);
        # the Faust app logs at WARNING as in bench_validator
        VALIDATOR_LOG_LEVEL="INFO" if partitioned else "WARNING",
    )
    generate_key(key_path(root / namespace, VALIDATOR), overwrite=True)  # one key for the app's workers
    started = []
    for i in range(count):
        log = (root / f"{namespace}worker-{i}.log").open("wb")
        started.append(
            subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "validator", "worker"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        )
    return started


def _joined(root: Path, namespace: str, count: int, timeout: float = 300) -> None:
    """Every worker holds its share of the inbox (the group has settled)."""
    end = time.monotonic() + timeout
    share = PARTITIONS // count
    while time.monotonic() < end:
        said = []
        for i in range(count):
            text = (root / f"{namespace}worker-{i}.log").read_text(errors="replace")
            held = text.rsplit("inbox partitions held: [", 1)
            said.append(len([p for p in held[-1].split("]", 1)[0].split(",") if p.strip()]) if len(held) > 1 else 0)
        if all(n == share for n in said):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{count} workers did not settle within {timeout}s")


def _cpu(workers: list[subprocess.Popen[bytes]]) -> list[float]:
    return [proc_cpu_seconds(w.pid) or 0.0 for w in workers]


def _measure(
    servers: str, root: Path, codec: AvroCodec, run: str, count: int, partitioned: bool
) -> tuple[float, list[float]]:
    """scores/s of the day, and each worker's CPU seconds over the same span."""
    namespace = f"bench{run}."
    topics = TopicNames(namespace)
    ensure_topics(servers, [*topics.all_fixed(), *(topics.miner_scores(m) for m in MINERS)], PARTITIONS)
    store = FileObjectStore(root / "store")
    workers = _workers(servers, root, namespace, count, partitioned)
    try:
        if partitioned:
            _joined(root, namespace, count)
        warm = dt.date(2026, 1, 1)
        _send(servers, _prepare(topics, codec, store, warm, 200)[0])  # joined, warm
        _wait_version(servers, topics.ensemble_batches, warm, codec)
        day = dt.date(2026, 1, 2)
        records, scores = _prepare(topics, codec, store, day, ALERTS)
        cpu = _cpu(workers)
        started = time.perf_counter()
        _send(servers, records)
        done = _wait_version(servers, topics.ensemble_batches, day, codec)
        used = [after - before for before, after in zip(cpu, _cpu(workers), strict=True)]
        return scores / (done - started), used
    finally:
        for w in workers:
            os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            w.wait(60)


def run() -> list[dict[str, Any]]:
    codec = AvroCodec(FileSchemaRegistry.default())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        port = free_port()
        broker = start_broker(port, root / "broker.log")
        servers = f"127.0.0.1:{port}"
        try:
            wait_for_broker(servers)
            faust_rate, faust_cpu = _measure(servers, root, codec, "faust", 1, partitioned=False)
            one, one_cpu = _measure(servers, root, codec, "one", 1, partitioned=True)
            two, two_cpu = _measure(servers, root, codec, "two", 2, partitioned=True)
        finally:
            stop_process_group(broker.pid)
    case = f"{len(MINERS)} miners x {ALERTS} alerts, chunks of {CHUNK}, {PARTITIONS} inbox partitions"
    return [
        {"component": "validator", "case": f"{case}: 1 worker (single Faust app), to the batch record",
         "value": round(faust_rate), "unit": "scores/s", "baseline": "", "ratio": ""},
        {"component": "validator", "case": f"{case}: 1 partitioned worker vs the Faust app",
         "value": round(one), "unit": "scores/s", "baseline": round(faust_rate), "ratio": round(one / faust_rate, 3)},
        {"component": "validator", "case": f"{case}: 2 partitioned workers vs 1 (wall, sharing this machine's cores)",
         "value": round(two), "unit": "scores/s", "baseline": round(one), "ratio": round(two / one, 3)},
        {"component": "validator", "case": f"{case}: CPU of the round, 1 partitioned worker vs the Faust app",
         "value": round(one_cpu[0], 2), "unit": "s", "baseline": round(faust_cpu[0], 2),
         "ratio": round(one_cpu[0] / faust_cpu[0], 3)},
        {"component": "validator",
         "case": f"{case}: CPU of the round, the busier of 2 partitioned workers vs 1 worker "
                 f"(the other: {min(two_cpu):.2f} s)",
         "value": round(max(two_cpu), 2), "unit": "s", "baseline": round(one_cpu[0], 2),
         "ratio": round(max(two_cpu) / one_cpu[0], 3)},
        {"component": "validator",
         "case": f"{case}: 2 partitioned workers vs 1, projected for workers on their own cores "
                 "(1 worker's CPU / the busier worker's; baseline: the wall ratio measured here)",
         "value": round(one_cpu[0] / max(two_cpu), 3), "unit": "x", "baseline": round(two / one, 3), "ratio": ""},
    ]  # fmt: skip


def main() -> None:
    for r in run():
        print(f"{r['case']:<100} {r['value']:>10} {r['unit']:<9} {r['baseline']:>10} {r['ratio']:>6}")


if __name__ == "__main__":
    main()
