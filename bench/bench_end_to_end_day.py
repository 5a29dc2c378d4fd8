"""Benchmark: 5 miners end to end as the day grows (10k / 100k / 1M alerts), and the growth law.

The harness of ``bench_end_to_end_scale`` (every service its own process on a fresh local broker;
models trained once per profile on small days; the day written before the services start) with
``bench_end_to_end``'s 5 miners. For each size: batch announced -> ensemble queryable (the
baseline, measured in the same run on the same broker, is the transport floor of alerts x miners
records), the peak RSS and CPU time of every process, and when each had done its work (95% of its
CPU time). The growth exponent is the least-squares slope of log(value) over log(alerts). The
days are those of ``bench_miner_scale`` (alerts / addresses / flows: 10k / 50k / 1M,
100k / 500k / 2M, 1M / 2.5M / 5M) so a miner's figures here compare with one miner alone there;
the 5 miners and the services share the machine's cores.

    .venv/bin/python -m bench.bench_end_to_end_day [--sizes 10000:50000:1000000 ...]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench.bench_end_to_end import MINERS, _transport_floor
from bench.bench_end_to_end_scale import SERVICES, announce_and_watch, plan_for, prepare, where_time_goes
from bench.table import print_rows
from streams.errors import StackError
from streams.progress import say
from streams.stack import free_port, start_broker, stop_process_group, wait_for_broker

SIZES = ((10_000, 50_000, 1_000_000), (100_000, 500_000, 2_000_000), (1_000_000, 2_500_000, 5_000_000))
DEADLINE_S = 3600.0  # the round closes as soon as every miner is in; the deadline only bounds a stuck one


def _label(alerts: int, addresses: int, flows: int) -> str:
    return f"{alerts // 1000}k alerts / {addresses / 1e6:g}M addresses / {flows / 1e6:g}M flows x {len(MINERS)} miners"


def _case(bootstrap: str, tmp: Path, size: tuple[int, int, int]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    alerts, addresses, flows = size
    namespace = f"d{uuid.uuid4().hex[:6]}."
    plan = plan_for(MINERS, size, deadline_s=DEADLINE_S)
    label = _label(*size)
    demo, generated = prepare(plan, tmp / namespace, bootstrap, namespace)
    with demo:
        demo.start_services()
        watch = announce_and_watch(demo, timeout=DEADLINE_S)
    floor = _transport_floor(bootstrap, alerts * len(MINERS))
    rows: list[dict[str, Any]] = [
        {"component": "end-to-end-day", "case": f"SOT generate + write the day, one process ({label})",
         "value": round(generated, 1), "unit": "s"},
        {"component": "end-to-end-day", "case": f"batch announced -> ensemble in gateway ({label})",
         "value": round(watch.seconds, 2), "unit": "s", "baseline": round(floor, 2),
         "ratio": round(watch.seconds / floor, 1)},
        {"component": "end-to-end-day", "case": f"scores ensembled per second ({label})",
         "value": round(alerts * len(MINERS) / watch.seconds), "unit": "scores/s"},
        *(dict(r, component="end-to-end-day") for r in where_time_goes(watch, label)),
    ]  # fmt: skip
    for name in (*(m.miner_id for m in MINERS), *SERVICES):
        if name in watch.peak_mb:
            rows.append({"component": "memory", "case": f"peak RSS {name} ({label})",
                         "value": round(watch.peak_mb[name]), "unit": "MiB"})  # fmt: skip
        if name in watch.cpu_s:
            rows.append({"component": "cpu", "case": f"CPU time {name} ({label})",
                         "value": round(watch.cpu_s[name], 1), "unit": "s"})  # fmt: skip
    miners = [watch.peak_mb[m.miner_id] for m in MINERS if m.miner_id in watch.peak_mb]
    figures = {"time": watch.seconds, "miner RSS (max)": max(miners, default=math.nan)}
    figures |= {f"{name} RSS": watch.peak_mb.get(name, math.nan) for name in SERVICES}
    figures["CPU time, all processes"] = sum(watch.cpu_s.values())
    say(f"peak RSS (MiB): {', '.join(f'{n} {mb:.0f}' for n, mb in sorted(watch.peak_mb.items()))}")
    say(f"CPU time (s): {', '.join(f'{n} {s:.0f}' for n, s in sorted(watch.cpu_s.items()))}")
    return rows, figures


def _slope(xs: list[float], ys: list[float]) -> float:
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)


def growth(sizes: tuple[tuple[int, int, int], ...], figures: list[dict[str, float]]) -> list[dict[str, Any]]:
    if len(figures) < 2:
        return []
    span = f"{sizes[0][0] // 1000}k..{sizes[len(figures) - 1][0] // 1000}k alerts x {len(MINERS)} miners"
    alerts = [float(s[0]) for s in sizes[: len(figures)]]
    return [
        {"component": "end-to-end-day", "case": f"growth exponent of {what}, {span}",
         "value": round(_slope(alerts, [f[what] for f in figures]), 3), "unit": "exp"}
        for what in figures[0] if all(math.isfinite(f[what]) and f[what] > 0 for f in figures)
    ]  # fmt: skip


def run(sizes: tuple[tuple[int, int, int], ...] = SIZES) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    figures: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        broker = start_broker(port, Path(tmp) / "broker.log")
        try:
            wait_for_broker(f"127.0.0.1:{port}")
            for size in sizes:
                try:
                    case_rows, case_figures = _case(f"127.0.0.1:{port}", Path(tmp), size)
                except StackError as exc:  # keep the smaller days' figures; say which day did not finish
                    say(f"{_label(*size)} did not finish: {exc}")
                    break
                rows += case_rows
                figures.append(case_figures)
        finally:
            stop_process_group(broker.pid)
    return rows + growth(sizes, figures)


def _size(text: str) -> tuple[int, int, int]:
    alerts, addresses, flows = (int(part) for part in text.split(":"))
    return alerts, addresses, flows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_size, nargs="+", default=list(SIZES), help="alerts:addresses:flows")
    print_rows(run(tuple(parser.parse_args().sizes)))
