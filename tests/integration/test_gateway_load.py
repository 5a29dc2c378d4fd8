"""Bounded load on the gateway for a fixed time, good and bad requests mixed: zero 5xx."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sanic import Sanic
from sink_service import read_endpoint

from gateway.app import create_app, serve_in_loop
from gateway.settings import GatewaySettings
from simulation import as_messages, as_published, sample_date
from streams.codec import AvroCodec
from streams.schema_registry import FileSchemaRegistry
from streams.settings import StackSettings
from streams.signing import VALIDATOR, Signer
from streams.stack import free_port
from streams.topics import TopicNames
from warehouse.sink import WarehouseSink

pytestmark = pytest.mark.integration

DATE = dt.date(2026, 4, 6)
SECONDS = 8
PATHS = [
    f"/ensemble/rankings/alerts/{DATE}?limit=100",
    "/ensemble/scores/alerts/latest?min_score=0.5&order=score&limit=50",
    f"/ensemble/scores/clusters/{DATE}",
    f"/submissions/{DATE}/miner-a?limit=20",
    f"/validation/{DATE}",
    "/miners/rankings",
    "/dates/available",
    "/health",
    # bad input: must be 4xx, never 5xx
    "/ensemble/scores/alerts/2026-13-45",
    "/ensemble/scores/alerts/yesterday",
    f"/ensemble/scores/alerts/{DATE}?limit=-1",
    f"/ensemble/scores/alerts/{DATE}?offset=abc",
    f"/ensemble/scores/alerts/{DATE}?min_score=NaN",
    f"/ensemble/scores/alerts/{DATE}?order=DROP%20TABLE",
    "/ensemble/scores/alerts/1999-01-01",
    f"/submissions/{DATE}/no-such-miner",
    "/miners/%00/performance",
    f"/validation/{DATE}/{'x' * 300}",
    "/nope",
]


async def test_bounded_load_gives_no_server_errors(
    warehouse_stack: StackSettings, clickhouse: Any, clickhouse_path: Path, topics: TopicNames
) -> None:
    codec = AvroCodec(FileSchemaRegistry.default())
    database = f"l_{uuid.uuid4().hex[:12]}"
    signer = Signer(Ed25519PrivateKey.generate(), VALIDATOR)
    sink = WarehouseSink(clickhouse, database, topics, codec, validator_key=signer.public_key)
    sink.ensure_tables()
    records = sample_date(codec, topics, DATE, alerts=2_000, clusters=50, miners=("miner-a", "miner-b"))
    assert sink.write(as_messages(as_published(records, signer, topics)))

    settings = GatewaySettings(stack=warehouse_stack, database=database, port=free_port())
    Sanic.test_mode = True
    app = create_app(settings, name=f"load_{uuid.uuid4().hex[:8]}")
    with read_endpoint(clickhouse_path, warehouse_stack.warehouse_reads_url):
        async with serve_in_loop(app, "127.0.0.1", settings.port):
            load = await asyncio.create_subprocess_exec(
                sys.executable, str(Path(__file__).with_name("load_generator.py")),
                f"http://127.0.0.1:{settings.port}", str(SECONDS), "8", *PATHS,
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(load.communicate(), timeout=SECONDS + 60)
    statuses = orjson.loads(out)
    assert sum(statuses.values()) > 100, statuses
    assert all(status.isdigit() for status in statuses), f"transport errors: {statuses}"
    server_errors = {s: n for s, n in statuses.items() if s.startswith("5")}
    assert not server_errors, statuses
    assert {"200", "400", "404"} <= set(statuses), statuses
