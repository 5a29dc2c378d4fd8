"""``GET /weights`` against a hand-computed example, on a bare app with a fake warehouse."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sanic import Sanic
from sanic_testing.testing import SanicASGITestClient

from gateway.app import _error_answer
from gateway.settings import GatewaySettings
from gateway.weights import add_weights_route
from streams.settings import StackSettings

BATCH = {
    "processing_date": dt.date(2026, 1, 10),
    "version": 2,
    "miners": [
        {"miner_id": "miner-b", "weight": 0.2, "immediate_score": 0.4, "completed": True},
        {"miner_id": "miner-a", "weight": 0.6, "immediate_score": 0.5, "completed": True},
        {"miner_id": "copier", "weight": 0.0, "immediate_score": 0.1, "completed": True},
        {"miner_id": "miner-c", "weight": 0.1, "immediate_score": 0.3, "completed": True},
        {"miner_id": "miner-d", "weight": 0.1, "immediate_score": 0.3, "completed": True},
    ],
    # the keys the validator bound the miners to (miner-d's record predates its binding)
    "miner_keys": {"miner-a": "aa" * 32, "miner-b": "bb" * 32, "copier": "cc" * 32, "miner-c": "dd" * 32},
}


class FakeReader:
    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    async def rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        self.asked.append(params)
        return [BATCH] if params.get("date") in (None, BATCH["processing_date"]) else []


def _client(name: str) -> tuple[SanicASGITestClient, FakeReader]:
    app = Sanic(name)
    app.config.AUTO_EXTEND = False
    add_weights_route(app, GatewaySettings(stack=StackSettings(_env_file=None), run_sink=False))
    app.error_handler.add(Exception, _error_answer)
    reader = FakeReader()
    app.ctx.reader = reader
    return SanicASGITestClient(app), reader


async def test_weights_match_the_hand_computed_example() -> None:
    client, reader = _client("weights_ok")
    _, answer = await client.get("/weights")
    assert answer.status == 200, answer.text
    body = answer.json
    assert (body["processing_date"], body["version"], body["network"]) == ("2026-01-10", 2, "ethereum")
    # sorted by miner id, uid = position; the copier's 0 is dropped; no cap: 0.6 -> 65535,
    # 0.2 / 0.6 * 65535 = 21845, 0.1 / 0.6 * 65535 = 10922.5 -> 10922 (float32 weights, as the SDK computes)
    assert [(w["miner_id"], w["uid"], w["weight_u16"]) for w in body["weights"]] == [
        ("miner-a", 1, 65535),
        ("miner-b", 2, 21845),
        ("miner-c", 3, 10922),
        ("miner-d", 4, 10922),
    ]
    assert body["uids"] == [1, 2, 3, 4] and body["weights_u16"] == [65535, 21845, 10922, 10922]
    assert [w["key"] for w in body["weights"]] == ["aa" * 32, "bb" * 32, "dd" * 32, ""]
    assert sum(w["weight"] for w in body["weights"]) == pytest.approx(1.0, abs=1e-6)

    # capped at 0.4: [0.6, 0.2, 0.1, 0.1] -> [0.4, 0.3, 0.15, 0.15] -> 65535, 49151, 24576, 24576
    _, capped = await client.get("/weights", params={"date": "2026-01-10", "max_weight_limit": "0.4"})
    assert [w["weight_u16"] for w in capped.json["weights"]] == [65535, 49151, 24576, 24576]
    assert reader.asked[-1]["date"] == dt.date(2026, 1, 10)


async def test_bad_parameters_and_unknown_dates() -> None:
    client, _ = _client("weights_bad")
    _, bad = await client.get("/weights", params={"max_weight_limit": "2"})
    assert bad.status == 400 and "max_weight_limit" in bad.json["error"]["message"]
    _, missing = await client.get("/weights", params={"date": "2025-01-01"})
    assert missing.status == 404
