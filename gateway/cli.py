"""``riskstream gateway serve``: the REST API, reading the warehouse that ``riskstream warehouse sink`` fills."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from gateway.settings import GatewaySettings
from streams.progress import say
from streams.warehouse_schema import reads_url


def _serve(args: argparse.Namespace) -> int:
    from gateway.app import create_app

    _log_to_stderr()
    overrides: dict[str, Any] = {"host": args.host, "port": args.port}
    settings = GatewaySettings(**{k: v for k, v in overrides.items() if v is not None})
    app = create_app(settings)
    say(f"gateway on http://{settings.host}:{settings.port}, reading {reads_url(settings.stack)}")
    app.run(
        host=settings.host,
        port=settings.port,
        single_process=True,
        access_log=settings.access_log or args.access_log,
        motd=False,
    )
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("gateway", help="the REST gateway over the ClickHouse warehouse (read-only)")
    actions = parser.add_subparsers(dest="gateway_command", required=True)
    serve = actions.add_parser("serve", help="serve the REST API (single process; run as many as wanted)")
    serve.add_argument("--host", default=None, help="listen address (default: GATEWAY_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="listen port (default: GATEWAY_PORT or 9000)")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(run=_serve)


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
