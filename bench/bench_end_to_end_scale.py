"""Benchmark: the seed's shape, 15 miners, at 10k and 100k alerts: batch announced -> ensemble queryable.

Same harness as ``bench_end_to_end`` (every service its own process on a fresh local broker), with
15 miners: 9 trained (honest-a, honest-b, partial), 6 untrained (random, constant, copycats).
The baseline, measured in the same run on the same broker, is the transport floor: producing and
consuming alerts x miners records with raw confluent-kafka. Also the peak RSS and CPU time of every
process, and where the time goes: when each kind of process had used 95% of its CPU time since
the announcement (its work done), in seconds after the announcement.

Training is not what is measured: the models learn from two small labelled days (10k alerts),
and each profile is trained once; its other miners get a copy of that model directory (training
is deterministic for the same dates, seed and threads, so the copy is the model each would train).
The day is generated and written before the services start, so announcing it is all that is left.

    .venv/bin/python -m bench.bench_end_to_end_scale [--alerts 10000 100000]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.bench_end_to_end import _transport_floor
from bench.table import print_rows
from ops.demo import Demo, DemoPlan, MinerPlan, isolated_run
from ops.processes import ProcessGroup, wait_until
from streams.errors import StackError
from streams.progress import say, step
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
HISTORY = (10_000, 50_000, 1_000_000)  # alerts, addresses, flows of the training days
DONE = 0.95  # of a process's CPU time since the announcement: its work is done (the rest is polling)
SERVICES = ("validator", "warehouse", "gateway")


def day_size(alerts: int) -> tuple[int, int, int]:
    """The day's shape as in ``bench_end_to_end``: 5 addresses an alert, 100 flows an alert up to 2M."""
    return alerts, alerts * 5, min(alerts * 100, 2_000_000)


def plan_for(miners: tuple[MinerPlan, ...], size: tuple[int, int, int], deadline_s: float) -> DemoPlan:
    alerts, addresses, flows = size
    clusters = max(alerts // 20, 1)
    plan = DemoPlan.for_today(days=1, history=2, alerts=alerts, addresses=addresses, flows=flows, clusters=clusters,
                              gateway_port=free_port(), deadline_s=deadline_s)  # fmt: skip
    return dataclasses.replace(plan, miners=miners)


def prepare(plan: DemoPlan, home: Path, bootstrap: str, namespace: str) -> tuple[Demo, float]:
    """Train on small history days (each profile once), then generate and write the day; not yet announced.

    Returns the demo (services not started) and the seconds the day took to generate and write.
    """
    stack, env = isolated_run(home, bootstrap, namespace)
    firsts = tuple({m.profile: m for m in reversed(plan.miners) if m.trained}.values())
    alerts, addresses, flows = HISTORY
    small = dataclasses.replace(plan, miners=firsts, alerts=alerts, addresses=addresses, flows=flows,
                                clusters=alerts // 20)  # fmt: skip
    trainer = Demo(small, stack, env, cwd=home.parent)
    with trainer:
        trainer.prepare_history()
        trainer.train_miners()
    models = stack.home / "models"
    for miner in plan.miners:
        first = next((f for f in firsts if f.profile == miner.profile), None)
        if miner.trained and first is not None and first.miner_id != miner.miner_id:
            shutil.copytree(models / first.miner_id, models / miner.miner_id)
    demo = Demo(plan, stack, env, cwd=home.parent)
    started = time.perf_counter()
    with step(f"generating {plan.days[0]} ({plan.alerts} alerts, {plan.addresses} addresses, {plan.flows} flows)"):
        demo.processes.run("sot-generate", ["sot", "generate", "--date", plan.days[0].isoformat()], timeout=3600)
    return demo, time.perf_counter() - started


@dataclass
class Watch:
    """What the processes did between the announcement and the ensemble being queryable."""

    seconds: float = 0.0
    peak_mb: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)  # since the announcement
    busy_until: dict[str, float] = field(default_factory=dict)  # seconds after the announcement
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # service -> its /metrics samples
    warehouse_bytes: int = 0  # the embedded warehouse's directory on disk


def _wait_for_miners_assigned(demo: Demo, timeout: float = 120.0) -> None:
    """Announce only once every miner has fetched from its ``sot.batches`` partitions (its /health tells
    the lag once it has): a first group join takes seconds, which a running miner does not pay."""
    topic = demo.stack.topics.sot_batches
    names = [f"miner-{m.miner_id}" for m in demo.plan.miners]

    def fetching(service: str) -> bool:
        try:
            url = json.loads((demo.stack.home / "services" / f"{service}.json").read_text())["url"]
            body = httpx.get(f"{url}/health", timeout=2.0).json()
        except (OSError, ValueError, httpx.HTTPError):
            return False
        return (body.get("lag") or {}).get(topic) is not None

    def all_fetching() -> bool:
        demo.processes.check()
        return all(fetching(name) for name in names)

    with step(f"waiting for {len(names)} miners to fetch from {topic}"):
        wait_until(f"every miner fetching from {topic}", all_fetching, timeout=timeout)


def service_metrics(home: Path, service: str) -> dict[str, float]:
    """The samples of a running service's ``/metrics`` (its URL from ``{home}/services``), summed over labels
    but ``table``: ``riskstream_sink_rows_total{table=x}`` is kept as ``riskstream_sink_rows_total:x``."""
    url = json.loads((home / "services" / f"{service}.json").read_text())["url"]
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            name = sample.name + (f":{sample.labels['table']}" if "table" in sample.labels else "")
            found[name] = found.get(name, 0.0) + sample.value
    return found


def announce_and_watch(demo: Demo, timeout: float, interval: float = 1.0, report_every: float = 30.0) -> Watch:
    """Announce the day, then sample every process's CPU until its ensemble is queryable in the gateway.

    A process's ``busy_until`` is when it had used ``DONE`` of its CPU time since the announcement:
    with many processes on few cores none of them gets a whole core, so a busy threshold would not do.
    """
    day = demo.plan.days[0].isoformat()
    _wait_for_miners_assigned(demo)
    base = demo.processes.cpu_seconds()
    demo.publish_days()  # the day is written: this only announces it on sot.batches
    announced = reported = time.perf_counter()
    samples: list[tuple[float, dict[str, float]]] = []
    while demo.available().get(day, 0) < 1:
        time.sleep(interval)
        now = time.perf_counter() - announced
        samples.append((now, demo.processes.cpu_seconds()))
        if now > timeout:
            msg = f"timed out after {timeout:.0f}s waiting for the ensemble of {day}"
            raise StackError(msg)
        if time.perf_counter() - reported >= report_every:
            reported = time.perf_counter()
            say(f"{now:.0f}s after the announcement: {_progress(demo.processes, samples[-1][1], base)}")
    watch = Watch(seconds=time.perf_counter() - announced, peak_mb=demo.processes.peak_rss_mb())
    watch.metrics = {name: service_metrics(demo.stack.home, name) for name in ("validator", "warehouse")}
    if demo.stack.clickhouse_url.startswith("chdb://"):
        watch.warehouse_bytes = _directory_bytes(Path(demo.stack.clickhouse_url.removeprefix("chdb://")))
    watch.cpu_s = {name: used - base.get(name, 0.0) for name, used in demo.processes.cpu_seconds().items()}
    for name, used in watch.cpu_s.items():
        done = next((t for t, cpu in samples if cpu.get(name, 0.0) - base.get(name, 0.0) >= DONE * used), None)
        watch.busy_until[name] = watch.seconds if done is None else done
    say(f"ensemble of {day} queryable {watch.seconds:.1f}s after the announcement; {DONE:.0%} of CPU used by (s): "
        + ", ".join(f"{n} {t:.0f}" for n, t in sorted(watch.busy_until.items(), key=lambda kv: kv[1])))  # fmt: skip
    return watch


def _directory_bytes(path: Path) -> int:
    """Bytes of the files under ``path``; files merged away while it is counted are skipped."""
    total = 0
    for folder, _, names in os.walk(path):  # os.walk skips directories that vanish
        for name in names:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(folder, name)).st_size
    return total


def _progress(processes: ProcessGroup, cpu: dict[str, float], base: dict[str, float]) -> str:
    rss = processes.rss_mb()
    miners = [n for n in cpu if n.startswith("miner-")]
    parts = [f"{n} cpu {cpu[n] - base.get(n, 0.0):.0f}s rss {rss.get(n, 0):.0f} MiB" for n in SERVICES if n in cpu]
    if miners:
        parts.append(f"miners cpu {sum(cpu[n] - base.get(n, 0.0) for n in miners):.0f}s "
                     f"rss {sum(rss.get(n, 0) for n in miners):.0f} MiB in all")  # fmt: skip
    return "; ".join(parts)


def where_time_goes(watch: Watch, label: str) -> list[dict[str, Any]]:
    """When the miners, validator and sink had done their work (seconds after the announcement), and the
    validator's round time and the sink's time inside insert statements from their own metrics."""
    miners = [t for n, t in watch.busy_until.items() if n.startswith("miner-")]
    last = {"miners (the last of them)": max(miners, default=None)}
    last |= {name: watch.busy_until.get(name) for name in ("validator", "warehouse")}
    rows = [
        {"component": "end-to-end", "case": f"| where time goes: {who} had used {DONE:.0%} of its CPU ({label})",
         "value": round(t, 1), "unit": "s"}
        for who, t in last.items() if t is not None
    ]  # fmt: skip
    validator, sink = watch.metrics.get("validator", {}), watch.metrics.get("warehouse", {})
    figures = {
        "validator: batch event seen -> ensemble batch record sent": validator.get(
            "riskstream_validator_round_seconds_sum"),
        "validator: handling inbox record batches": validator.get("riskstream_validator_batch_seconds_sum"),
        "sink: inside insert statements": sink.get("riskstream_sink_insert_seconds_sum"),
    }  # fmt: skip
    rows += [
        {"component": "end-to-end", "case": f"| where time goes: {what} ({label})", "value": round(value, 1),
         "unit": "s"}
        for what, value in figures.items() if value
    ]  # fmt: skip
    inserted = sum(v for n, v in sink.items() if n.startswith("riskstream_sink_rows_total:"))
    if inserted:
        rows.append({"component": "end-to-end", "case": f"| sink rows inserted, all tables ({label})",
                     "value": round(inserted), "unit": "rows"})  # fmt: skip
        if watch.warehouse_bytes:
            rows.append({"component": "end-to-end", "case": f"| chDB directory on disk per row inserted ({label})",
                         "value": round(watch.warehouse_bytes / inserted, 1), "unit": "B/row"})  # fmt: skip
    return rows


def _case(bootstrap: str, tmp: Path, alerts: int) -> list[dict[str, Any]]:
    namespace = f"s{uuid.uuid4().hex[:6]}."
    plan = plan_for(MINERS, day_size(alerts), deadline_s=900)
    label = f"{alerts // 1000}k alerts x {len(MINERS)} miners"
    demo, _ = prepare(plan, tmp / namespace, bootstrap, namespace)
    with demo:
        demo.start_services()
        watch = announce_and_watch(demo, timeout=2400)
    floor = _transport_floor(bootstrap, alerts * len(MINERS))
    miners = {n: mb for n, mb in watch.peak_mb.items() if n.startswith("miner-")}
    rows: list[dict[str, Any]] = [
        {"component": "end-to-end", "case": f"batch announced -> ensemble in gateway, {label}",
         "value": round(watch.seconds, 2), "unit": "s", "baseline": round(floor, 2),
         "ratio": round(watch.seconds / floor, 1)},
        {"component": "end-to-end", "case": f"scores ensembled per second, {label}",
         "value": round(alerts * len(MINERS) / watch.seconds), "unit": "scores/s",
         "baseline": round(alerts * len(MINERS) / floor), "ratio": round(floor / watch.seconds, 3)},
        *where_time_goes(watch, label),
    ]  # fmt: skip
    rows += [
        {"component": "memory", "case": f"peak RSS {name} ({label})", "value": round(watch.peak_mb[name]),
         "unit": "MiB"}
        for name in SERVICES if name in watch.peak_mb
    ]  # fmt: skip
    if miners:
        worst = max(miners, key=lambda n: miners[n])
        rows.append({"component": "memory", "case": f"peak RSS miners, max ({worst}) ({label})",
                     "value": round(miners[worst]), "unit": "MiB"})  # fmt: skip
        rows.append({"component": "memory", "case": f"peak RSS miners, sum of {len(miners)} ({label})",
                     "value": round(sum(miners.values())), "unit": "MiB"})  # fmt: skip
    rows += [
        {"component": "cpu", "case": f"CPU time {name} ({label})", "value": round(watch.cpu_s[name], 1), "unit": "s"}
        for name in SERVICES if name in watch.cpu_s
    ]  # fmt: skip
    miner_cpu = [watch.cpu_s[n] for n in miners if n in watch.cpu_s]
    if miner_cpu:
        rows.append({"component": "cpu", "case": f"CPU time miners, max ({label})", "value": round(max(miner_cpu), 1),
                     "unit": "s"})  # fmt: skip
        rows.append({"component": "cpu", "case": f"CPU time miners, sum of {len(miner_cpu)} ({label})",
                     "value": round(sum(miner_cpu), 1), "unit": "s"})  # fmt: skip
    say(f"peak RSS (MiB): {', '.join(f'{n} {mb:.0f}' for n, mb in sorted(watch.peak_mb.items()))}")
    return rows


def run(alert_counts: tuple[int, ...] = (10_000, 100_000)) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        broker = start_broker(port, Path(tmp) / "broker.log")
        try:
            wait_for_broker(f"127.0.0.1:{port}")
            for alerts in alert_counts:
                rows += _case(f"127.0.0.1:{port}", Path(tmp), alerts)
        finally:
            stop_process_group(broker.pid)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, nargs="+", default=[10_000, 100_000])
    print_rows(run(tuple(parser.parse_args().alerts)))
