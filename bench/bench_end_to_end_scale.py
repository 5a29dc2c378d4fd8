"""Benchmark: the seed's shape, 15 miners, at 10k and 100k alerts: batch announced -> ensemble queryable.

Same harness as ``bench_end_to_end`` (every service its own process on a fresh local broker), with
15 miners: 9 trained (honest-a, honest-b, partial), 6 untrained (random, constant, copycats).
The baseline, measured in the same run on the same broker, is the transport floor: producing and
consuming alerts x miners records with raw confluent-kafka. Also the peak RSS of every process and
the per-unit costs the README's "Scaling out" section is computed from.

    .venv/bin/python -m bench.bench_end_to_end_scale [--alerts 10000 100000]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.bench_end_to_end import _transport_floor
from bench.table import print_rows
from ops.demo import Demo, DemoPlan, MinerPlan, isolated_run
from streams.stack import free_port, start_broker, stop_process_group, wait_for_broker

MINERS = (
    *(MinerPlan(f"miner-{i:02d}", "honest-a") for i in range(1, 5)),
    *(MinerPlan(f"miner-{i:02d}", "honest-b") for i in range(5, 9)),
    MinerPlan("miner-09", "partial"),
    MinerPlan("miner-10", "random", trained=False),
    MinerPlan("miner-11", "random", trained=False),
    MinerPlan("miner-12", "constant", trained=False),
    MinerPlan("miner-13", "copycat", copy_of="miner-01", trained=False),
    MinerPlan("miner-14", "copycat", copy_of="miner-05", trained=False),
    MinerPlan("miner-15", "copycat", copy_of="miner-02", trained=False),
)


def _case(bootstrap: str, tmp: Path, alerts: int, history: int) -> list[dict[str, Any]]:
    namespace = f"s{uuid.uuid4().hex[:6]}."
    home = tmp / namespace
    stack, env = isolated_run(home, bootstrap, namespace)
    plan = DemoPlan.for_today(
        days=1, history=history, alerts=alerts, addresses=alerts * 5, flows=min(alerts * 100, 2_000_000),
        clusters=max(alerts // 20, 1), gateway_port=free_port(), deadline_s=900,
    )  # fmt: skip
    plan = dataclasses.replace(plan, miners=MINERS)
    label = f"{alerts // 1000}k alerts x {len(MINERS)} miners"
    with Demo(plan, stack, env, cwd=home.parent) as demo:
        demo.prepare_history()
        trained_at = time.perf_counter()
        demo.train_miners()
        trained = time.perf_counter() - trained_at
        demo.start_services()
        started = time.perf_counter()
        demo.publish_days()
        announced = time.perf_counter()
        demo.wait_for_ensembles(plan.days, timeout=2400)
        done = time.perf_counter()
        peaks = demo.processes.peak_rss_mb()
    floor = _transport_floor(bootstrap, alerts * len(MINERS))
    seconds = done - announced
    miners = {n: mb for n, mb in peaks.items() if n.startswith("miner-")}
    rows: list[dict[str, Any]] = [
        {
            "component": "end-to-end",
            "case": f"batch announced -> ensemble in gateway, {label}",
            "value": round(seconds, 2),
            "unit": "s",
            "baseline": round(floor, 2),
            "ratio": round(seconds / floor, 1),
        },
        {"component": "end-to-end", "case": f"generate + publish + ensemble, {label}",
         "value": round(done - started, 2), "unit": "s"},
        {"component": "end-to-end", "case": f"scores ensembled per second, {label}",
         "value": round(alerts * len(MINERS) / seconds), "unit": "scores/s",
         "baseline": round(alerts * len(MINERS) / floor), "ratio": round(floor / seconds, 3)},
        {"component": "end-to-end", "case": f"training {sum(m.trained for m in MINERS)} miners ({label} history)",
         "value": round(trained, 1), "unit": "s"},
    ]  # fmt: skip
    for name in ("validator", "gateway"):
        if name in peaks:
            rows.append({"component": "memory", "case": f"peak RSS {name} ({label})", "value": round(peaks[name]),
                         "unit": "MiB"})  # fmt: skip
    if miners:
        worst = max(miners, key=lambda n: miners[n])
        rows.append({"component": "memory", "case": f"peak RSS miners, max ({worst}) ({label})",
                     "value": round(miners[worst]), "unit": "MiB"})  # fmt: skip
        rows.append({"component": "memory", "case": f"peak RSS miners, sum of {len(miners)} ({label})",
                     "value": round(sum(miners.values())), "unit": "MiB"})  # fmt: skip
    return rows


def run(alert_counts: tuple[int, ...] = (10_000, 100_000)) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        broker = start_broker(port, Path(tmp) / "broker.log")
        try:
            wait_for_broker(f"127.0.0.1:{port}")
            for alerts in alert_counts:
                rows += _case(f"127.0.0.1:{port}", Path(tmp), alerts, history=2)
        finally:
            stop_process_group(broker.pid)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, nargs="+", default=[10_000, 100_000])
    print_rows(run(tuple(parser.parse_args().alerts)))
