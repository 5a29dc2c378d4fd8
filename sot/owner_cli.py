"""The owner's commands: ``sot check``, ``sot publish --from``, ``sot labels --from``, ``sot contract``.

riskstream sot check data/2026-01-02 --network torus --date 2026-01-02
riskstream sot publish --from data/2026-01-02 --network torus --date 2026-01-02 [--replace]
riskstream sot labels --from truth/2026-01-02 --network torus --date 2026-01-02
riskstream sot contract --json
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import orjson

from sot.check import CheckReport, check_batch, check_labels, read_files
from sot.errors import BatchNotFoundError, CheckFailedError, SotInputError
from sot.owner import check_due, publish_owner_batch, publish_owner_labels
from sot.publisher import sot_producer
from sot.settings import SotSettings
from streams import batch as contract
from streams import contract as documented
from streams.control import operator_signer
from streams.errors import BatchRejected, ConfigError
from streams.kafka import BatchProducer
from streams.objectstore import FileObjectStore, ObjectStore, S3ObjectStore, open_store
from streams.progress import say, step
from streams.signing import OPERATOR, Signer, key_path


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        msg = f"not a date (YYYY-MM-DD): {text!r}"
        raise SotInputError(msg) from None


def _network(name: str) -> str:
    try:
        return contract.check_network(name)
    except ConfigError as exc:
        raise SotInputError(str(exc)) from None


def _window(args: argparse.Namespace, settings: SotSettings) -> int:
    window = int(args.window_days if args.window_days is not None else settings.window_days)
    if not 1 <= window <= 90:
        msg = f"--window-days must be 1..90, got {window}"
        raise SotInputError(msg)
    return window


def source_store(location: str, settings: SotSettings) -> tuple[ObjectStore, str]:
    """The owner's files: a directory, or ``s3://bucket/prefix`` (credentials of the stack settings)."""
    if location.startswith("s3://"):
        stack = settings.stack
        secret = stack.s3_secret_access_key
        store = open_store(
            location,
            endpoint_url=stack.s3_endpoint_url,
            region=stack.s3_region,
            access_key_id=stack.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret is not None else None,
        )
        return store, ""
    path = Path(location.removeprefix("file://"))
    if not path.is_dir():
        msg = f"not a directory: {location}"
        raise SotInputError(msg)
    return FileObjectStore(path), ""


def _print(report: CheckReport, where: str) -> None:
    print(f"check of {where}: {'ok' if report.ok else 'FAILED'}")
    print(report.render())


def _checked(args: argparse.Namespace, settings: SotSettings) -> tuple[CheckReport, str, dt.date, int]:
    network, date, window = _network(args.network or settings.network), _date(args.date), _window(args, settings)
    where = args.source if getattr(args, "source", None) else args.dir
    store, prefix = source_store(where, settings)
    with step(f"checking {where} against the contract ({network} {date}, window {window})"):
        files = read_files(store, contract.BATCH_FILES, prefix)
        report = check_batch(files, network=network, date=date, window_days=window, assume_utc=args.assume_utc)
    _print(report, where)
    return report, network, date, window


def run_check(args: argparse.Namespace) -> int:
    report, *_ = _checked(args, SotSettings())
    return 0 if report.ok else 2


def _producer(settings: SotSettings) -> BatchProducer | None:
    return sot_producer(settings.stack) if settings.emit_events else None


def _target(settings: SotSettings) -> FileObjectStore | S3ObjectStore:
    from streams.objectstore import open_stack_store

    return open_stack_store(settings.stack)


def _operator(settings: SotSettings) -> Signer | None:
    """The local operator's signer if its key exists (never created here): it signs a replacement's event."""
    if not key_path(settings.stack.home, OPERATOR).exists():
        say(
            "no operator key: if the date's ensemble is already out, the validator opens a new version of the "
            "replaced batch once an operator runs `riskstream replay --from sot`"
        )
        return None
    return operator_signer(settings.stack)


def run_publish_from(args: argparse.Namespace) -> int:
    settings = SotSettings()
    report, network, date, window = _checked(args, settings)
    if not report.ok:
        msg = f"{len(report.problems)} problem(s) in {args.source} (listed above); nothing was uploaded"
        raise CheckFailedError(msg)
    store = _target(settings)
    store.exists(contract.snapshot_key(network, date, window, contract.MANIFEST))  # fails fast if unreachable
    producer = _producer(settings)
    operator = _operator(settings) if args.replace else None
    with step(f"publishing {network} {date} from {args.source} to {store.url}"):
        manifest = publish_owner_batch(
            store,
            producer,
            settings.stack.topics,
            report.tables,
            network=network,
            date=date,
            window_days=window,
            replace=args.replace,
            operator=operator,
        )
    announced = f" and announced on {settings.stack.topics.sot_batches}" if producer is not None else ""
    say(f"published {manifest.batch_id} ({manifest.files['alerts.parquet'].rows} alerts){announced}")
    print(f"{store.url.rstrip('/')}/{contract.snapshot_key(network, date, window, contract.MANIFEST)}")
    return 0


def run_labels_from(args: argparse.Namespace) -> int:
    settings = SotSettings()
    network, date, window = _network(args.network or settings.network), _date(args.date), _window(args, settings)
    check_due(date, settings.tau_days, dt.datetime.now(dt.UTC))  # refused early, before anything is read
    store = _target(settings)
    key = contract.snapshot_key(network, date, window, contract.MANIFEST)
    if not store.exists(key):
        msg = f"no published batch {network} {date} (window {window}) in {store.url}: publish it first"
        raise BatchNotFoundError(msg)
    try:
        published = contract.read_batch(store, key)
    except BatchRejected as exc:
        msg = f"the published batch at {key} does not verify: {exc}"
        raise BatchNotFoundError(msg) from exc
    source, prefix = source_store(args.source, settings)
    with step(f"checking labels in {args.source} against {published.manifest.batch_id}"):
        files = read_files(source, contract.LABEL_FILES, prefix)
        report = check_labels(files, published.alerts.column("alert_id"), published.clusters.column("cluster_id"))
    _print(report, args.source)
    if not report.ok:
        msg = f"{len(report.problems)} problem(s) in {args.source} (listed above); nothing was uploaded"
        raise CheckFailedError(msg)
    producer = _producer(settings)
    manifest = publish_owner_labels(
        store,
        producer,
        settings.stack.topics,
        report.tables,
        snapshot=published.manifest,
        tau_days=settings.tau_days,
        replace=args.replace,
    )
    say(f"labels of {manifest.batch_id}: {manifest.extra.get('alert_positives')} positive alerts")
    return 0


def run_contract(args: argparse.Namespace) -> int:
    if args.json:
        sys.stdout.write(orjson.dumps(documented.as_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(documented.render_markdown())
    return 0


def owner_options(p: argparse.ArgumentParser) -> None:
    """Options shared by check and publish --from (and labels --from)."""
    p.add_argument("--window-days", type=int, default=None, help="default: SOT_WINDOW_DAYS (7)")
    p.add_argument("--assume-utc", action="store_true", help="take timestamps without a time zone as UTC")
    p.add_argument("--replace", action="store_true", help="replace a different batch already published (new id)")


def register_owner(commands: Any) -> None:
    check = commands.add_parser("check", help="check an owner's batch files against the contract (exit 2: problems)")
    check.add_argument("dir", help="directory (or s3://bucket/prefix) holding alerts.parquet, features.parquet, ...")
    check.add_argument("--network", required=True, help=f"any name matching {contract.NETWORK_PATTERN}")
    check.add_argument("--date", required=True, help="processing date, YYYY-MM-DD")
    check.add_argument("--window-days", type=int, default=None, help="default: SOT_WINDOW_DAYS (7)")
    check.add_argument("--assume-utc", action="store_true", help="take timestamps without a time zone as UTC")
    check.set_defaults(run=run_check)

    doc = commands.add_parser("contract", help="print the batch contract (docs/batch-contract.md, or --json)")
    doc.add_argument("--json", action="store_true")
    doc.set_defaults(run=run_contract)
