"""``GET /weights``: the newest ensemble's miner weights, normalised the way a Bittensor subnet validator emits them.

curl ':9000/weights?date=2026-01-10&max_weight_limit=0.5'
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from gateway import queries
from gateway.errors import BadRequestError
from gateway.params import parse_date_or_latest, parse_network
from gateway.routes import json_answer
from gateway.settings import GatewaySettings
from streams.subnet_weights import subnet_weights


def weights_answer(batch: dict[str, Any], network: str, max_weight_limit: float) -> dict[str, Any]:
    """The answer for one committed ensemble batch row (``miners`` with their weights)."""
    keys = batch.get("miner_keys") or {}  # the keys the validator bound the miners to (its signed record)
    miners = [(str(m["miner_id"]), str(keys.get(m["miner_id"], "")), float(m["weight"])) for m in batch["miners"]]
    rows = subnet_weights(miners, max_weight_limit=max_weight_limit)
    day: dt.date = batch["processing_date"]
    return {
        "network": network,
        "processing_date": day.isoformat(),
        "version": int(batch["version"]),
        "max_weight_limit": max_weight_limit,
        "weights": [asdict(r) for r in rows],
        "uids": [r.uid for r in rows],
        "weights_u16": [r.weight_u16 for r in rows],
    }


def _limit(request: Request) -> float:
    raw = request.args.get("max_weight_limit", "1.0")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        msg = f"max_weight_limit must be in (0, 1]: {raw!r}"
        raise BadRequestError(msg)
    return value


def add_weights_route(app: Sanic[Any, Any], settings: GatewaySettings) -> None:
    @app.get("/weights")
    async def weights(request: Request) -> HTTPResponse:
        network = parse_network(request.args, settings.network)
        day = parse_date_or_latest(request.args.get("date", "latest"))
        limit = _limit(request)
        reader: queries.WarehouseReader | None = getattr(request.app.ctx, "reader", None)
        if reader is None:
            msg = "the warehouse is not open yet"
            raise queries.WarehouseUnavailableError(msg)
        batch = await queries.committed_batch(reader, network, day)
        return json_answer(weights_answer(batch, network, limit))
