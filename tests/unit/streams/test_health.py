"""Health: 503 once the broker has been unreachable past the limit or a check fails; the tiny HTTP server."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx

from streams.health import Health, HealthServer, announce, ask_services, withdraw


def test_unreachable_broker_turns_503_only_after_the_limit() -> None:
    health = Health("miner-a", max_unreachable_s=5)
    health.broker_up()
    assert health.report()[0] == 200
    health.broker_down("connection refused")
    status, body = health.report()
    assert status == 200 and body["broker"]["reachable"] is False  # within the limit: still serving
    health.unreachable_since = time.monotonic() - 6
    status, body = health.report()
    assert status == 503 and body["status"] == "unavailable"
    assert body["problems"] == ["broker unreachable for 6s (limit 5s)"]
    health.broker_up()
    assert health.report()[0] == 200


def test_a_failing_check_is_a_503_with_its_reason() -> None:
    health = Health("gateway")
    health.broker_up()
    reason: list[str | None] = [None]
    health.checks.append(lambda: reason[0])
    health.details.append(lambda: {"lag": {"t": 3}})
    health.progressed("committed 5 records")
    status, body = health.report()
    assert status == 200 and body["lag"] == {"t": 3} and body["last_progress"]["what"] == "committed 5 records"
    reason[0] = "warehouse sink stopped"
    assert health.report() == (503, health.report()[1])
    assert health.report()[1]["problems"] == ["warehouse sink stopped"]


async def test_the_server_answers_health_and_nothing_else(tmp_path: Path) -> None:
    health = Health("validator")
    health.broker_up()
    async with HealthServer({"/health": health.http_answer}) as server:
        announced = announce(tmp_path, "validator", server.url)
        async with httpx.AsyncClient(base_url=server.url) as client:
            answer = await client.get("/health?verbose=1")
            assert answer.status_code == 200 and answer.json()["service"] == "validator"
            assert (await client.get("/nope")).status_code == 404
            assert (await client.post("/health")).status_code == 405
        found = await asyncio.to_thread(ask_services, tmp_path)
        assert [(f.service, f.status) for f in found] == [("validator", 200)]
        withdraw(announced)
    assert not announced.exists()


def test_entries_of_dead_processes_are_dropped(tmp_path: Path) -> None:
    path = announce(tmp_path, "miner-x", "http://127.0.0.1:9")
    path.write_text(path.read_text().replace(str(os.getpid()), "999999999"))
    assert ask_services(tmp_path) == [] and not path.exists()
