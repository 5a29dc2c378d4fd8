"""``riskstream demo`` and ``riskstream replay``: the operator's commands."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ops.demo import DemoPlan, run_demo, stack_env
from ops.replay import replay_from_scores, replay_from_sot
from streams.cli import parse_date
from streams.control import operator_signer
from streams.kafka import BatchProducer
from streams.kafka_admin import ensure_topics
from streams.objectstore import open_stack_store
from streams.progress import say, step
from streams.settings import STACK_ENV_FILE, StackSettings
from streams.signing import OPERATOR, generate_key, key_path
from streams.stack import LocalStack, free_port


def _demo(args: argparse.Namespace) -> int:
    settings = StackSettings()
    local = LocalStack(settings.home, STACK_ENV_FILE)
    started_broker = not local.status().running
    with step(f"starting the local stack (Kafka-protocol broker, {args.storage} log)"):
        status = local.up(storage=args.storage)
    say(f"broker on {status.bootstrap_servers}")
    try:
        stack = StackSettings()  # re-read: `stack up` wrote the connection settings
        port = args.port or free_port()
        plan = DemoPlan.for_today(
            days=args.days, alerts=args.alerts, addresses=args.alerts * 5, flows=args.alerts * 100,
            clusters=max(args.alerts // 20, 1), gateway_port=port, deadline_s=args.deadline,
        )  # fmt: skip
        env = {**os.environ, **stack_env(stack, stack.home.resolve())}
        run_demo(plan, stack, env, keep_running=not args.no_wait)
    finally:
        if started_broker:
            with step("stopping the broker"):
                local.down()
    return 0


def _replay(args: argparse.Namespace) -> int:
    stack = StackSettings()
    producer = BatchProducer(stack.bootstrap_servers)
    topics = stack.topics
    signer = operator_signer(stack, args.operator)  # the validator serves operator-signed replays only
    if args.source == "sot":
        if args.reweigh:
            say("--reweigh applies to --from scores only (a re-announced batch is a new round)")
            return 2
        store = open_stack_store(stack)
        manifest = replay_from_sot(store, producer, topics, args.network, args.date, signer, args.window_days)
        say(f"re-announced {manifest.batch_id} on {topics.sot_batches}: miners re-score, then a new ensemble version")
    else:
        ensure_topics(stack.bootstrap_servers, [topics.validator_control], stack.topic_partitions)
        replay_from_scores(producer, topics, args.network, args.date, signer, reweigh=args.reweigh)
        weights = "today's weights (--reweigh)" if args.reweigh else "the weights of the version it replays"
        say(f"asked the validator on {topics.validator_control} to re-read {args.network} {args.date} with {weights}")
    return 0


def register_demo(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="the whole system on the local stack, until Ctrl-C")
    parser.add_argument("--days", type=int, default=3, help="days to publish and ensemble")
    parser.add_argument("--alerts", type=int, default=2_000, help="alerts per day")
    parser.add_argument("--port", type=int, default=9000, help="gateway port (0: a free one)")
    parser.add_argument("--deadline", type=float, default=60.0, help="validator deadline in seconds")
    parser.add_argument("--no-wait", action="store_true", help="stop everything once the demo is ready")
    parser.add_argument(
        "--storage", choices=["s3", "memory"], default="s3", help="broker log: durable (default) or in memory"
    )
    parser.set_defaults(run=_demo)


def register_replay(subparsers: Any) -> None:
    parser = subparsers.add_parser("replay", help="reprocess one date; the new ensemble version supersedes the old")
    parser.add_argument("--date", type=parse_date, required=True)
    parser.add_argument("--from", dest="source", choices=["sot", "scores"], default="scores")
    parser.add_argument("--network", default="ethereum")
    parser.add_argument("--window-days", type=int, default=7)
    parser.add_argument(
        "--reweigh",
        action="store_true",
        help="apply today's weights (priors from the latest ground truth) instead of the replayed version's; "
        "the batch record says priors=reweighed",
    )
    parser.add_argument("--operator", default=OPERATOR, help="operator name (its key: <home>/keys/operator.key)")
    parser.set_defaults(run=_replay)


def _operator_keygen(args: argparse.Namespace) -> int:
    path = key_path(StackSettings().home, OPERATOR)
    public = generate_key(path, overwrite=args.force)
    print(f"private key: {path} (0600, never share it)")
    print(f"public key:  {public}")
    print(f'allow it (RISKSTREAM_OPERATOR_KEYS): {{"{args.name}": "{public}"}}')
    return 0


def register_operator(subparsers: Any) -> None:
    parser = subparsers.add_parser("operator", help="the operator's key (signs replays)")
    actions = parser.add_subparsers(dest="action", required=True)
    keygen = actions.add_parser("keygen", help="create the operator's Ed25519 key pair")
    keygen.add_argument("--name", default=OPERATOR, help="the name the validator knows the key by")
    keygen.add_argument("--force", action="store_true", help="replace an existing key")
    keygen.set_defaults(run=_operator_keygen)
