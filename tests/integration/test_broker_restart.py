"""The broker stops for 30 s and comes back on the same port with its durable log while every service runs.

Every service's /health turns 503 once the broker has been unreachable past its limit and back to
200 after; nobody crashes; the next date is ensembled with both miners with no manual step; the
ground-truth history survives; a replay of an earlier date still works.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import httpx
import pytest

from ops.demo import Demo, DemoPlan, MinerPlan, isolated_run
from ops.processes import wait_until
from streams.health import ServiceHealth, ask_services
from streams.stack import LocalStack, free_port, stop_process_group

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

SERVICES = {"warehouse", "validator", "miner-miner-a", "miner-miner-b"}  # the gateway needs no broker
UNREACHABLE_LIMIT_S = 5


def _health(home: Path) -> dict[str, ServiceHealth]:
    return {found.service: found for found in ask_services(home)}


def _all(home: Path, status: int) -> bool:
    found = _health(home)
    return set(found) >= SERVICES and all(found[s].status == status for s in SERVICES)


def _ground_truth_dates(gateway: str, miner: str) -> list[str]:
    history = httpx.get(f"{gateway}/miners/{miner}/performance", timeout=10).json()["history"]
    return [h["processing_date"] for h in history if h["ground_truth_score"] is not None]


def test_services_ride_out_a_broker_outage(tmp_path: Path) -> None:
    local = LocalStack(tmp_path / "stack", tmp_path / "stack" / "stack.env")
    broker = local.up()  # durable: the S3 server and the broker on it
    assert broker.running and broker.storage == "s3"
    try:
        stack, env = isolated_run(tmp_path / "home", str(broker.bootstrap_servers))
        env |= {
            f"{prefix}_HEALTH_MAX_UNREACHABLE_S": str(UNREACHABLE_LIMIT_S)
            for prefix in ("MINER", "VALIDATOR", "WAREHOUSE")
        }
        plan = DemoPlan.for_today(
            days=2, history=2, alerts=200, addresses=1_000, flows=8_000, clusters=10, deadline_s=60,
            gateway_port=free_port(),
        )  # fmt: skip
        plan = dataclasses.replace(plan, miners=(MinerPlan("miner-a", "honest-a"), MinerPlan("miner-b", "honest-b")))
        first, second = plan.days
        with Demo(plan, stack, env, cwd=tmp_path) as demo:
            demo.prepare_history()
            demo.train_miners()
            demo.start_services()
            demo.publish_days((first,))
            demo.wait_for_ensembles((first,), timeout=240)
            demo.publish_labels(first)
            wait_until(
                "the ground truth of the first date",
                lambda: first.isoformat() in _ground_truth_dates(demo.gateway_url, "miner-a"),
                timeout=120,
            )
            wait_until("every service healthy", lambda: _all(stack.home, 200), timeout=60)

            record = local.recorded()
            assert record is not None and record.broker_pid is not None
            stop_process_group(record.broker_pid)  # the S3 server (the log) stays
            stopped = time.monotonic()
            wait_until("every service to answer 503", lambda: _all(stack.home, 503), timeout=UNREACHABLE_LIMIT_S + 25)
            assert time.monotonic() - stopped < UNREACHABLE_LIMIT_S + 25
            problems = _health(stack.home)["validator"].body["problems"]
            assert any("broker unreachable" in p for p in problems), problems
            time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))  # a 30 s outage
            demo.processes.check()  # nobody died while the broker was away

            again = local.up()  # same port, same log
            assert again.bootstrap_servers == broker.bootstrap_servers and again.running
            wait_until("every service healthy again", lambda: _all(stack.home, 200), timeout=90)

            demo.publish_days((second,))
            demo.wait_for_ensembles((second,), timeout=300)
            latest = httpx.get(f"{demo.gateway_url}/dates/latest", timeout=10).json()
            assert latest["processing_date"] == second.isoformat() and latest["total_miners"] == 2
            assert first.isoformat() in _ground_truth_dates(demo.gateway_url, "miner-a")  # history intact

            demo.processes.run("replay", ["replay", "--date", first.isoformat(), "--from", "scores"])
            demo.wait_for_ensembles((first,), min_version=2, timeout=240)
            demo.processes.check()
            assert demo.available() == {first.isoformat(): 2, second.isoformat(): 1}
    finally:
        local.down()
