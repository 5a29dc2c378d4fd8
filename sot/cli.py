"""``riskstream sot``: the data owner's commands, for its own files or the synthetic generator.

riskstream sot generate --network torus --date 2026-01-02 --out data/
riskstream sot publish --date 2026-01-02 --days 3                     # generated batches
riskstream sot labels --date 2026-01-02
riskstream sot publish --from data/ --network torus --date 2026-01-02  # an owner's files (see owner_cli.py)
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from sot.errors import BatchExistsError, BatchNotFoundError, LabelsNotDueError, SotInputError
from sot.generator import GENERATOR_VERSION, GeneratedBatch, check_params, generate_batch
from sot.owner_cli import owner_options, register_owner, run_labels_from, run_publish_from
from sot.publisher import (
    announce_batch,
    private_params_key,
    publish_batch,
    publish_labels,
    sot_producer,
    write_batch,
)
from sot.retention import register_prune
from sot.settings import SotSettings
from streams import batch as contract
from streams.errors import ConfigError, EventError, ObjectStoreError
from streams.objectstore import FileObjectStore, open_stack_store, sha256_hex
from streams.progress import say, step

_SIZES = ("alerts", "addresses", "flows", "clusters", "seed")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        msg = f"not a date (YYYY-MM-DD): {text!r}"
        raise SotInputError(msg) from None


def _sizes(args: argparse.Namespace, settings: SotSettings) -> dict[str, int]:
    return {
        name: getattr(args, name) if getattr(args, name, None) is not None else getattr(settings, name)
        for name in _SIZES
    }


def _network(args: argparse.Namespace, settings: SotSettings) -> str:
    network: str = args.network or settings.network
    try:
        return contract.check_network(network)
    except ConfigError as exc:
        raise SotInputError(str(exc)) from None


def _generate(network: str, date: dt.date, sizes: dict[str, int], window_days: int) -> GeneratedBatch:
    with step(f"generating {network} {date} ({sizes['alerts']} alerts, {sizes['flows']} flows)"):
        return generate_batch(network, date, window_days=window_days, **sizes)


def _run_generate(args: argparse.Namespace) -> int:
    settings = SotSettings()
    network, date = _network(args, settings), _date(args.date)
    sizes = _sizes(args, settings)
    check_params(network, window_days=settings.window_days, **{k: v for k, v in sizes.items() if k != "seed"})
    store = FileObjectStore(Path(args.out)) if args.out else open_stack_store(settings.stack)
    private = None if args.out else open_stack_store(settings.stack, private=True)
    batch = _generate(network, date, sizes, settings.window_days)
    with step(f"writing to {store.url}"):
        manifest = write_batch(store, batch, private=private)
    say(f"{manifest.batch_id}: " + ", ".join(f"{n} {f.rows} rows" for n, f in manifest.files.items()))
    print(f"{store.url.rstrip('/')}/{contract.snapshot_key(network, date, settings.window_days, contract.MANIFEST)}")
    return 0


def _published_params(store: Any, network: str, date: dt.date, window_days: int) -> dict[str, int] | None:
    import orjson

    key = private_params_key(network, date, window_days)
    if not store.exists(key):
        return None
    try:
        raw = orjson.loads(store.get(key))
        return {name: int(raw[name]) for name in _SIZES}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        msg = f"unreadable {key}: {exc}"
        raise BatchNotFoundError(msg) from exc


def _generated_manifest(store: Any, network: str, date: dt.date, window: int) -> contract.Manifest | None:
    """The batch published for the date, if any; refused when the generator did not make it."""
    key = contract.snapshot_key(network, date, window, contract.MANIFEST)
    if not store.exists(key):
        return None
    try:
        old = contract.Manifest.from_json(store.get(key))
    except (EventError, ObjectStoreError) as exc:
        msg = f"{key} exists but cannot be read ({exc}); the generator does not overwrite it"
        raise BatchExistsError(msg) from exc
    if old.extra.get("generator") != GENERATOR_VERSION:
        msg = (
            f"{key} holds {old.batch_id}, which the generator did not make (an owner's batch?); it is never "
            "overwritten by generated data (an owner replaces it with `sot publish --from ... --replace`)"
        )
        raise BatchExistsError(msg)
    return old


def _guard(old: contract.Manifest | None, batch: GeneratedBatch, replace: bool) -> None:
    """A different generated batch replaces a generated one only with ``--replace``."""
    if old is None or replace:
        return
    files = batch.snapshot_files()
    same = {n: contract.FileEntry(t.num_rows, sha256_hex(files[n]), len(files[n])) for n, t in batch.tables.items()}
    if old.files != same:
        msg = f"{old.network} {old.processing_date} holds generated batch {old.batch_id} made with other parameters; "
        msg += "nothing changed (--replace to replace it)"
        raise BatchExistsError(msg)


def _run_publish(args: argparse.Namespace) -> int:
    if args.source:
        return run_publish_from(args)
    settings = SotSettings()
    network, end = _network(args, settings), _date(args.date)
    if args.days < 1:
        msg = f"--days must be at least 1, got {args.days}"
        raise SotInputError(msg)
    sizes = _sizes(args, settings)
    check_params(network, window_days=settings.window_days, **{k: v for k, v in sizes.items() if k != "seed"})
    store, private = open_stack_store(settings.stack), open_stack_store(settings.stack, private=True)
    private.exists(private_params_key(network, end, settings.window_days))  # fails fast if unreachable
    window = settings.window_days
    dates = [end - dt.timedelta(days=offset) for offset in range(args.days - 1, -1, -1)]
    published = {date: _generated_manifest(store, network, date, window) for date in dates}  # before any work
    producer = sot_producer(settings.stack)
    topics = settings.stack.topics
    for offset in range(args.days - 1, -1, -1):
        date = end - dt.timedelta(days=offset)
        written = store.exists(contract.snapshot_key(network, date, window, contract.MANIFEST))
        if written and _published_params(private, network, date, window) == sizes:
            with step(f"announcing {network} {date} already in {store.url} on {topics.sot_batches}"):
                manifest = announce_batch(store, producer, topics, network, date, window)
            continue
        batch = _generate(network, date, sizes, window)
        _guard(published[date], batch, args.replace)
        with step(f"publishing {network} {date} to {store.url} and {topics.sot_batches}"):
            manifest = publish_batch(store, producer, topics, batch, emit=settings.emit_events, private=private)
        say(f"published {manifest.batch_id} ({manifest.files['alerts.parquet'].rows} alerts)")
    return 0


def _run_labels(args: argparse.Namespace) -> int:
    if args.source:
        return run_labels_from(args)
    settings = SotSettings()
    network, date = _network(args, settings), _date(args.date)
    due = date + dt.timedelta(days=settings.tau_days)
    today = dt.datetime.now(dt.UTC).date()
    if due > today and not args.force:
        msg = (
            f"labels of {network} {date} are due on {due} (tau {settings.tau_days} days); today is {today}; use --force"
        )
        raise LabelsNotDueError(msg)
    store, private = open_stack_store(settings.stack), open_stack_store(settings.stack, private=True)
    window = settings.window_days
    sizes = _published_params(private, network, date, window)
    manifest_key = contract.snapshot_key(network, date, window, contract.MANIFEST)
    if sizes is None or not store.exists(manifest_key):
        msg = f"no published batch {network} {date} (window {window}) in {store.url}: publish it first"
        raise BatchNotFoundError(msg)
    producer = sot_producer(settings.stack)
    batch = _generate(network, date, sizes, window)
    try:
        published = contract.Manifest.from_json(store.get(manifest_key))
    except (EventError, ObjectStoreError) as exc:
        msg = f"cannot read {manifest_key}: {exc}"
        raise BatchNotFoundError(msg) from exc
    alerts_sha = sha256_hex(batch.snapshot_files()["alerts.parquet"])
    if published.files.get("alerts.parquet") is None or published.files["alerts.parquet"].sha256 != alerts_sha:
        msg = f"{manifest_key} does not match the regenerated batch: its alerts were not made by this generator"
        raise BatchNotFoundError(msg)
    with step(f"publishing labels of {network} {date} to {settings.stack.topics.sot_labels}"):
        manifest = publish_labels(store, producer, settings.stack.topics, batch, emit=settings.emit_events)
    say(f"labels {manifest.batch_id}: {manifest.extra.get('alert_positives')} positive alerts")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sot", help="the data owner: check and publish batches and labels (own or synthetic)"
    )
    commands = parser.add_subparsers(dest="sot_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--date", required=True, help="processing date, YYYY-MM-DD")
        p.add_argument(
            "--network", default=None, help=f"any name matching {contract.NETWORK_PATTERN} (default: SOT_NETWORK)"
        )

    def sizes(p: argparse.ArgumentParser) -> None:
        for name in _SIZES:
            p.add_argument(f"--{name}", type=int, default=None, help=f"default: SOT_{name.upper()}")

    gen = commands.add_parser("generate", help="generate one batch into a directory or the object store")
    common(gen)
    sizes(gen)
    gen.add_argument("--out", default=None, help="directory (default: the object store of the stack settings)")
    gen.set_defaults(run=_run_generate)

    pub = commands.add_parser("publish", help="generate, upload and announce batches on sot.batches")
    common(pub)
    sizes(pub)
    pub.add_argument("--days", type=int, default=1, help="backfill this many days ending at --date")
    pub.add_argument("--from", dest="source", default=None, help="publish an owner's files: DIR or s3://bucket/prefix")
    owner_options(pub)
    pub.set_defaults(run=_run_publish)

    lab = commands.add_parser("labels", help="publish the ground truth of a date to labels/ and sot.labels")
    common(lab)
    lab.add_argument("--force", action="store_true", help="generated labels only: publish before date + tau")
    lab.add_argument("--from", dest="source", default=None, help="publish an owner's labels: DIR or s3://bucket/prefix")
    owner_options(lab)
    lab.set_defaults(run=_run_labels)

    register_owner(commands)
    register_prune(commands)
