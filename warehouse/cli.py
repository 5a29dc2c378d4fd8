"""``riskstream warehouse sink``: consume the ensemble, validation and score topics into ClickHouse."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from streams.progress import say
from warehouse.settings import WarehouseSettings


async def _main(settings: WarehouseSettings) -> None:
    from warehouse.app import endpoint_address, run_warehouse

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stack = settings.stack
    address = endpoint_address(settings)
    where = "" if address is None else f", http://{address[0]}:{address[1]}"
    say(f"warehouse sink: {stack.bootstrap_servers} -> {stack.clickhouse_url} ({settings.database}){where}")
    await run_warehouse(settings, stop)
    say("warehouse sink stopped")


def _sink(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides: dict[str, Any] = {}
    if args.database:
        overrides["database"] = args.database
    asyncio.run(_main(WarehouseSettings(**overrides)))
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("warehouse", help="the ClickHouse warehouse sink (and, over chDB, its reads)")
    actions = parser.add_subparsers(dest="warehouse_command", required=True)
    sink = actions.add_parser(
        "sink",
        help="consume the ensemble, validation and score topics into ClickHouse; over chDB also serve reads",
    )
    sink.add_argument("--database", default=None, help="ClickHouse database (default: WAREHOUSE_DATABASE)")
    sink.set_defaults(run=_sink)
