"""``riskstream validator weights``: the weights of a date's ensemble, as a subnet validator emits them.

The weights come from the validator's own signed ``ensemble.batches`` records (newest version of
the date, or of the newest date), and so do the miners' keys (``miner_keys``: the keys the
validator bound them to); for records written before that field, the first signed registration
each miner made on ``miners.registry`` (the key the validator binds on first use). Normalisation follows the
Bittensor SDK (``streams.subnet_weights``). ``--set-weights`` calls the SDK's
``subtensor.set_weights`` when the optional ``bittensor`` package is installed; ``--dry-run``
prints the exact call instead.

    riskstream validator weights --date 2026-01-10 --json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import confluent_kafka

from streams.codec import AvroCodec
from streams.errors import CodecError, ConfigError
from streams.kafka import Message
from streams.kafka_admin import partitions_of
from streams.kafka_readers import RangeReader
from streams.records import ENSEMBLE_BATCH, MINER_REGISTRATION
from streams.schema_registry import registry_from_url
from streams.settings import StackSettings
from streams.signing import REGISTRATION, SignatureError, parse_public_key, verify, verify_output
from streams.subnet_weights import SubnetWeight, subnet_weights


@dataclass(frozen=True, slots=True)
class DateWeights:
    network: str
    processing_date: dt.date
    version: int
    miners: list[tuple[str, float]]  # (miner id, ensemble weight)
    keys: dict[str, str]  # miner id -> the key the validator bound it to (records before it: empty)


def _read_all(stack: StackSettings, topic: str, timeout_s: float) -> list[Message]:
    partitions = partitions_of(stack.bootstrap_servers, topic)
    if not partitions:
        return []
    starts = {topic: dict.fromkeys(partitions, confluent_kafka.OFFSET_BEGINNING)}
    found: list[Message] = []
    with RangeReader(stack.bootstrap_servers, starts, idle_s=2.0) as reader:
        for batch in reader.batches(timeout_s, to_end=True):
            found.extend(batch)
    return found


def newest_weights(
    messages: Iterable[Message],
    codec: AvroCodec,
    *,
    network: str,
    date: dt.date | None,
    verify_with: str | None,
    topics: Any,
) -> DateWeights | None:
    """The newest version's weights of ``date`` (or the newest date) among validator-signed batch records."""
    best: DateWeights | None = None
    for message in messages:
        if verify_with is not None:
            try:
                verify_output(verify_with, topics, message.topic, message.key, message.value, message.headers)
            except SignatureError:
                continue  # not written by the validator: never a weight
        try:
            decoded = codec.decode(message.value)
        except CodecError:
            continue
        r = decoded.record
        if decoded.name != ENSEMBLE_BATCH or r.get("network") != network:
            continue
        day = r["processing_date"]
        if date is not None and day != date:
            continue
        candidate = DateWeights(
            network,
            day,
            int(r["version"]),
            [(str(m["miner_id"]), float(m["weight"])) for m in r["miners"]],
            dict(r.get("miner_keys") or {}),
        )
        if best is None or (candidate.processing_date, candidate.version) > (best.processing_date, best.version):
            best = candidate
    return best


def bound_keys(messages: Iterable[Message], codec: AvroCodec) -> dict[str, str]:
    """Each miner's public key: the first registration that its own key signed (trust on first use)."""
    keys: dict[str, str] = {}
    for message in messages:
        if message.value is None:
            continue
        try:
            decoded = codec.decode(message.value)
        except CodecError:
            continue
        r = decoded.record
        miner_id, public = str(r.get("miner_id", "")), str(r.get("public_key") or "")
        if decoded.name != MINER_REGISTRATION or miner_id in keys or not public:
            continue
        try:
            verify(parse_public_key(public), REGISTRATION, miner_id, message.key, message.value, message.headers)
        except SignatureError:
            continue
        keys[miner_id] = public
    return keys


def weights_report(
    weights: DateWeights,
    keys: Mapping[str, str],
    *,
    max_weight_limit: float,
    min_allowed_weights: int = 0,
    uids: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    rows = subnet_weights(
        [(m, keys.get(m, ""), w) for m, w in weights.miners],
        max_weight_limit=max_weight_limit,
        min_allowed_weights=min_allowed_weights,
        uids=uids,
    )
    return {
        "network": weights.network,
        "processing_date": weights.processing_date.isoformat(),
        "version": weights.version,
        "max_weight_limit": max_weight_limit,
        "weights": [asdict(r) for r in rows],
        "uids": [r.uid for r in rows],
        "weights_u16": [r.weight_u16 for r in rows],
    }


def set_weights(rows: list[SubnetWeight], *, netuid: int, wallet: str, hotkey: str, network: str, dry_run: bool) -> str:
    """Emit the weights with the Bittensor SDK (``subtensor.set_weights``); ``dry_run`` only describes the call."""
    uids, values = [r.uid for r in rows], [r.weight for r in rows]
    call = (
        f"bittensor.Subtensor(network={network!r}).set_weights(wallet=bittensor.Wallet(name={wallet!r}, "
        f"hotkey={hotkey!r}), netuid={netuid}, uids={uids}, weights={values}, wait_for_inclusion=True)"
    )
    if dry_run:
        return f"dry run, would call: {call}"
    try:
        import bittensor  # type: ignore[import-not-found]  # optional extra: pip install bittensor
    except ImportError as exc:
        msg = "set_weights needs the optional bittensor package (pip install bittensor); use --dry-run to see the call"
        raise ConfigError(msg) from exc
    subtensor = bittensor.Subtensor(network=network)
    result = subtensor.set_weights(
        wallet=bittensor.Wallet(name=wallet, hotkey=hotkey),
        netuid=netuid,
        uids=uids,
        weights=values,
        wait_for_inclusion=True,
    )
    return f"set_weights answered {result!r}"


def run_weights(args: argparse.Namespace) -> int:
    stack = StackSettings()
    codec = AvroCodec(registry_from_url(stack.schema_registry_url))
    topics = stack.topics
    weights = newest_weights(
        _read_all(stack, topics.ensemble_batches, args.timeout),
        codec,
        network=args.network,
        date=args.date,
        verify_with=stack.validator_key(),
        topics=topics,
    )
    if weights is None:
        what = args.date.isoformat() if args.date else "any date"
        print(f"no validator-signed ensemble for {what} on {args.network}")
        return 1
    keys = weights.keys
    if any(m not in keys for m, _ in weights.miners):  # a record from before the batch carried the keys
        keys = bound_keys(_read_all(stack, topics.miner_registry, args.timeout), codec) | keys
    uids = {str(k): int(v) for k, v in json.loads(Path(args.uids).read_text()).items()} if args.uids else None
    report = weights_report(
        weights, keys, max_weight_limit=args.max_weight_limit, min_allowed_weights=args.min_allowed_weights, uids=uids
    )
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print(f"weights of {report['network']} {report['processing_date']} (ensemble version {report['version']})")
        print(f"  {'miner':<20} {'uid':>4} {'weight':>9} {'u16':>6}  key")
        for row in report["weights"]:
            key = row["key"] or "-"
            print(f"  {row['miner_id']:<20} {row['uid']:>4} {row['weight']:>9.6f} {row['weight_u16']:>6}  {key}")
    if args.set_weights or args.dry_run:
        rows = [SubnetWeight(**row) for row in report["weights"]]
        print(
            set_weights(
                rows,
                netuid=args.netuid,
                wallet=args.wallet,
                hotkey=args.hotkey,
                network=args.subtensor,
                dry_run=args.dry_run,
            )
        )
    return 0


def add_weights_command(actions: Any, parse_date: Any) -> None:
    weights = actions.add_parser("weights", help="the newest ensemble weights, normalised for a Bittensor subnet")
    weights.add_argument("--date", type=parse_date, default=None, help="default: the newest ensembled date")
    weights.add_argument("--network", default="ethereum")
    weights.add_argument("--json", action="store_true")
    weights.add_argument("--max-weight-limit", type=float, default=1.0, help="the subnet's max_weight_limit")
    weights.add_argument("--min-allowed-weights", type=int, default=0, help="the subnet's min_allowed_weights")
    weights.add_argument("--uids", default=None, help="JSON file {miner_id: uid}; default: position by miner id")
    weights.add_argument("--timeout", type=float, default=30.0, help="seconds to read the topics")
    weights.add_argument("--set-weights", action="store_true", help="call set_weights (needs bittensor)")
    weights.add_argument("--dry-run", action="store_true", help="print the set_weights call without making it")
    weights.add_argument("--netuid", type=int, default=0)
    weights.add_argument("--wallet", default="default")
    weights.add_argument("--hotkey", default="default")
    weights.add_argument("--subtensor", default="finney", help="subtensor network")
    weights.set_defaults(run=run_weights)
