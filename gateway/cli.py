"""``riskstream gateway serve`` (REST API, with the warehouse sink inside by default) and ``gateway sink``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

from gateway.settings import GatewaySettings
from streams.codec import AvroCodec
from streams.progress import say
from streams.schema_registry import registry_from_url
from streams.warehouse import WarehouseSink, connect, run_sink


def _serve(args: argparse.Namespace) -> int:
    from gateway.app import create_app

    _log_to_stderr()
    overrides: dict[str, Any] = {"host": args.host, "port": args.port}
    if args.no_sink:
        overrides["run_sink"] = False
    settings = GatewaySettings(**{k: v for k, v in overrides.items() if v is not None})
    app = create_app(settings)
    say(f"gateway on http://{settings.host}:{settings.port} (sink {'on' if settings.run_sink else 'off'})")
    app.run(
        host=settings.host,
        port=settings.port,
        single_process=True,
        access_log=settings.access_log or args.access_log,
        motd=False,
    )
    return 0


async def _sink_main(settings: GatewaySettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = await asyncio.to_thread(connect, settings.stack)
    codec = AvroCodec(registry_from_url(settings.stack.schema_registry_url))
    sink = WarehouseSink(
        client,
        settings.database,
        settings.stack.topics,
        codec,
        validator_key=settings.stack.validator_key,
        marker_timeout_s=settings.sink_marker_timeout_s,
    )
    say(f"warehouse sink: {settings.stack.bootstrap_servers} -> {settings.stack.clickhouse_url} ({settings.database})")
    try:
        await run_sink(
            settings.stack, sink, stop, group_id=settings.sink_group_id, max_records=settings.sink_max_records
        )
    finally:
        with contextlib.suppress(Exception):
            client.close()
        say(f"warehouse sink stopped: {dict(sink.stats.rows)} rows, {sink.stats.undecodable} undecodable")


def _sink(args: argparse.Namespace) -> int:
    _log_to_stderr()
    asyncio.run(_sink_main(GatewaySettings()))
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("gateway", help="the REST gateway over ClickHouse and its warehouse sink")
    actions = parser.add_subparsers(dest="gateway_command", required=True)
    serve = actions.add_parser("serve", help="serve the REST API (single process; runs the sink unless --no-sink)")
    serve.add_argument("--host", default=None, help="listen address (default: GATEWAY_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="listen port (default: GATEWAY_PORT or 9000)")
    serve.add_argument("--no-sink", action="store_true", help="do not consume topics (a separate `gateway sink` does)")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(run=_serve)
    sink = actions.add_parser("sink", help="consume the ensemble, validation and score topics into ClickHouse")
    sink.set_defaults(run=_sink)


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
