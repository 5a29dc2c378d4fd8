"""A bounded soak: 15 days through the whole system on the durable local stack, retention on.

Per day it prints the resident memory of every process (miners, validator, gateway with its
sink, broker, S3 server), the broker log size (the S3 server's directory), the object store
and ClickHouse sizes. Retention: ``sot prune --keep-days`` after each day, the warehouse
window (``GATEWAY_RETENTION_DAYS``) and the validator's (``VALIDATOR_RETENTION_DAYS``). Tansu
implements no topic retention, so the broker log is expected to grow (see the README).
``python -m bench --only soak`` (not in the default run: it takes several minutes).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
import time
from pathlib import Path
from typing import Any

from ops.demo import Demo, DemoPlan, MinerPlan, isolated_run
from ops.processes import proc_memory_mb
from streams.stack import LocalStack, free_port

DAYS, KEEP_DAYS, ALERTS = 15, 4, 1_000


def _row(case: str, value: float, unit: str) -> dict[str, Any]:
    return {"component": "soak", "case": case, "value": round(value, 1), "unit": unit, "baseline": None, "ratio": None}


def _size_mb(path: Path) -> float:
    if not path.exists():
        return 0.0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def run(days: int = DAYS) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="riskstream-soak-") as tmp:
        root = Path(tmp)
        local = LocalStack(root / "stack", root / "stack" / "stack.env")
        status = local.up()
        try:
            stack, env = isolated_run(root / "home", str(status.bootstrap_servers))
            env |= {
                "GATEWAY_RETENTION_DAYS": str(KEEP_DAYS), "GATEWAY_RETENTION_INTERVAL_S": "5",
                "VALIDATOR_RETENTION_DAYS": str(KEEP_DAYS),
            }  # fmt: skip
            plan = DemoPlan.for_today(
                days=days, history=3, alerts=ALERTS, addresses=ALERTS * 5, flows=ALERTS * 40, clusters=20,
                deadline_s=60, gateway_port=free_port(),
            )  # fmt: skip
            plan = dataclasses.replace(
                plan, miners=(MinerPlan("miner-a", "honest-a"), MinerPlan("miner-b", "honest-b"))
            )
            with Demo(plan, stack, env, cwd=root) as demo:
                demo.prepare_history()
                demo.train_miners()
                demo.start_services()
                first: dict[str, float] = {}
                last: dict[str, float] = {}
                for n, day in enumerate(plan.days, start=1):
                    started = time.perf_counter()
                    demo.publish_days((day,))
                    demo.wait_for_ensembles((day,), timeout=300)
                    demo.publish_labels(day)
                    # the simulated days lie in the past: a window of KEEP_DAYS behind the day just processed
                    keep = (dt.datetime.now(dt.UTC).date() - day).days + KEEP_DAYS
                    demo.processes.run(f"prune-{day}", ["sot", "prune", "--keep-days", str(keep)])
                    record = local.recorded()
                    figures = {f"rss {name} MiB": mb for name, mb in sorted(demo.processes.rss_mb().items())}
                    if record is not None and record.broker_pid and record.s3_pid:
                        figures["rss broker MiB"] = proc_memory_mb(record.broker_pid) or 0.0
                        figures["rss s3 server MiB"] = proc_memory_mb(record.s3_pid) or 0.0
                    figures["broker log MiB"] = _size_mb(local.s3_data)
                    figures["object store MiB"] = _size_mb(root / "home" / "store")
                    figures["clickhouse MiB"] = _size_mb(root / "home" / "chdb")
                    print(
                        f"day {n:2d} {day} ({time.perf_counter() - started:.0f}s): "
                        + ", ".join(f"{k} {v:.1f}" for k, v in figures.items()),
                        flush=True,
                    )
                    first = first or figures
                    last = figures
                for name, value in last.items():
                    rows.append(_row(f"{name}, day {days} (day 1: {first.get(name, 0):.1f})", value, "MiB"))
        finally:
            local.down()
    return rows


def main() -> None:
    import argparse

    from bench.table import print_rows

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=DAYS)
    print_rows(run(parser.parse_args().days))


if __name__ == "__main__":
    main()
