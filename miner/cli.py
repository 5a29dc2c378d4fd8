"""``riskstream miner train`` and ``riskstream miner run``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from miner.app import check_miner, run_miner, train_miner
from miner.diagnostics import render_report
from miner.profiles import PROFILES
from miner.settings import MinerSettings
from streams.batch import DEFAULT_WINDOW_DAYS
from streams.cli import parse_date
from streams.signing import generate_key


def _settings(args: argparse.Namespace) -> MinerSettings:
    overrides: dict[str, Any] = {"miner_id": args.miner_id}
    for name in ("profile", "scorer", "model_dir", "network", "copy_of", "delay_s", "chunk_size", "seed"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return MinerSettings(**overrides)


def _train(args: argparse.Namespace) -> int:
    settings = _settings(args)
    outcome = train_miner(settings, args.start_date, args.end_date, window_days=args.window_days, network=args.network)
    summary = {
        "promoted": outcome.promoted,
        "reason": outcome.reason,
        "version": outcome.scorer.version if outcome.scorer else None,
        "candidate": outcome.candidate.as_dict(),
        "current": outcome.current.as_dict() if outcome.current else None,
        "train_dates": outcome.train_dates,
        "validation_dates": outcome.validation_dates,
    }
    if outcome.promoted:
        print(f"trained {summary['version']} into {settings.models_path}")
    else:
        print(f"kept the current model: {outcome.reason}")
    print(json.dumps(summary, sort_keys=True))
    return 0 if outcome.promoted else 3


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(args)
    max_batches = 1 if args.once else args.max_batches
    stats = asyncio.run(run_miner(settings, max_batches=max_batches))
    print(f"miner {settings.miner_id}: {stats.submitted} submitted, {stats.failed} failed, {stats.skipped} skipped")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    settings = MinerSettings(miner_id=args.miner_id)
    public = generate_key(settings.key_path, overwrite=args.force)
    print(f"private key: {settings.key_path} (0600, never share it)")
    print(f"public key:  {public}")
    print(f'allow-list entry (VALIDATOR_MINER_KEYS): {{"{settings.miner_id}": "{public}"}}')
    return 0


def _check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    report = check_miner(
        settings, args.date, window_days=args.window_days, gateway_url=args.gateway, precision_k=args.k
    )
    print(json.dumps(report.as_dict(), sort_keys=True) if args.json else render_report(report))
    return 0 if report.ok else 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("miner", help="train models or run a scoring miner")
    actions = parser.add_subparsers(dest="action", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--miner-id", required=True)
        sub.add_argument("--profile", choices=sorted(PROFILES), default=None, help="a built-in scorer")
        sub.add_argument(
            "--scorer", default=None, help="package.module:factory or an entry point of riskstream.scorers"
        )
        sub.add_argument("--model-dir", type=Path, default=None, help="default: {home}/models/{miner_id}")
        sub.add_argument("--network", default=None)
        sub.add_argument("--seed", type=int, default=None)

    train = actions.add_parser(
        "train", help="fit the scorer on labelled dates, validate on the newest, refit on all and save"
    )
    common(train)
    train.add_argument("--start-date", type=parse_date, required=True)
    train.add_argument("--end-date", type=parse_date, required=True)
    train.add_argument("--window-days", type=int, default=DEFAULT_WINDOW_DAYS)
    train.set_defaults(run=_train)

    check = actions.add_parser(
        "check", help="score a published batch without submitting: what tiers 1-2 (and 3, once labelled) would say"
    )
    common(check)
    check.add_argument("--date", type=parse_date, required=True)
    check.add_argument("--window-days", type=int, default=DEFAULT_WINDOW_DAYS)
    check.add_argument(
        "--gateway", default="http://127.0.0.1:9000", help="gateway REST URL the ensemble's metrics come from"
    )
    check.add_argument("--k", type=int, default=100, help="K of precision@K")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(run=_check)

    run = actions.add_parser("run", help="score every batch published on sot.batches")
    common(run)
    run.add_argument("--copy-of", default=None, help="copycat profile: the miner it copies")
    run.add_argument("--delay-s", type=float, default=None, help="late profile: how long to hold a submission")
    run.add_argument("--chunk-size", type=int, default=None)
    stop = run.add_mutually_exclusive_group()
    stop.add_argument("--once", action="store_true", help="stop after the first batch")
    stop.add_argument("--max-batches", type=int, default=None)
    run.set_defaults(run=_run)

    keygen = actions.add_parser("keygen", help="create the miner's Ed25519 key pair (its identity)")
    keygen.add_argument("--miner-id", required=True)
    keygen.add_argument("--force", action="store_true", help="replace an existing key (the old binding breaks)")
    keygen.set_defaults(run=_keygen)
