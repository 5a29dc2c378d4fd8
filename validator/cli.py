"""``riskstream validator worker``: run the validator until SIGTERM or Ctrl-C.

riskstream validator worker --expected-miner m1 --expected-miner m2 --deadline 60
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from validator.settings import ValidatorSettings


def _worker(args: argparse.Namespace) -> int:
    from validator.app import create_validator, run_worker

    overrides: dict[str, Any] = {}
    if args.expected_miner:
        overrides["expected_miners"] = args.expected_miner
    if args.deadline is not None:
        overrides["deadline_s"] = args.deadline
    if args.web_port is not None:
        overrides["web_enabled"] = True
        overrides["web_port"] = args.web_port
    settings = ValidatorSettings(**overrides)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.partitioned:  # one of several workers sharing the inbox partitions
        from validator.workers import run_partitioned

        return run_partitioned(settings)
    return run_worker(create_validator(settings))


def _keygen(args: argparse.Namespace) -> int:
    from streams.signing import generate_key

    settings = ValidatorSettings()
    public = generate_key(settings.key_path, overwrite=args.force)
    print(f"private key: {settings.key_path} (0600, never share it)")
    print(f"public key:  {public} (RISKSTREAM_VALIDATOR_PUBLIC_KEY of the sink and subscribers)")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("validator", help="validate miner submissions and emit the ensemble")
    actions = parser.add_subparsers(dest="action", required=True)
    worker = actions.add_parser("worker", help="run the validator worker (Faust) until SIGTERM / Ctrl-C")
    worker.add_argument("--expected-miner", action="append", default=[], help="a miner the round waits for (repeat)")
    worker.add_argument("--deadline", type=float, default=None, help="seconds from the batch event to the ensemble")
    worker.add_argument("--web-port", type=int, default=None, help="serve Faust's web pages on this port")
    worker.set_defaults(run=_worker)
    keygen = actions.add_parser("keygen", help="create the validator's Ed25519 key pair (signs its outputs)")
    keygen.add_argument("--force", action="store_true", help="replace an existing key")
    keygen.set_defaults(run=_keygen)
    from streams.cli import parse_date
    from validator.weights import add_weights_command

    add_weights_command(actions, parse_date)
