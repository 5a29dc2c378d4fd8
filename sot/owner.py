"""Publishing an owner's own files: checked tables in, files then manifest (last) then the S3 event.

Nothing is overwritten silently: a different batch for a (network, date, window) that already
has one is refused unless ``replace``; a replacement keeps a copy of the old batch (and of its
labels) under ``retired/``, gets its own batch id, and old labels stop applying because labels
name the batch id they label.

    manifest = publish_owner_batch(store, producer, topics, report.tables, network="torus", date=d, window_days=7)
    publish_owner_labels(store, producer, topics, labels_report.tables, snapshot=manifest, now=now, tau_days=7)
"""

from __future__ import annotations

import datetime as dt
import time

import pyarrow as pa
import pyarrow.compute as pc

from sot.errors import BatchExistsError, LabelsNotDueError, PublishError
from sot.generator import to_parquet
from sot.publisher import batch_id, emit_event
from streams import batch as contract
from streams.errors import BatchRejected, ObjectStoreError
from streams.kafka import Producer
from streams.objectstore import ObjectStore, sha256_hex
from streams.progress import say
from streams.signing import Signer
from streams.topics import TopicNames

OWNER = "owner"  # extra["source"] of an owner's batch; the generator writes its own version string


def retired_key(kind: str, network: str, date: dt.date, window_days: int, old_id: str, name: str = "") -> str:
    """Where a replaced batch (or its labels) is kept: nothing published is ever lost."""
    return f"retired/{kind}/{network}/{date.isoformat()}/{window_days}/{old_id}/{name}"


def existing_manifest(store: ObjectStore, key: str) -> contract.Manifest | None:
    """The manifest at ``key`` if there is one (an unreadable one counts as a batch: never overwritten)."""
    if not store.exists(key):
        return None
    try:
        return contract.read_manifest(store, key)
    except BatchRejected as exc:
        msg = f"{key} exists but cannot be read ({exc.reason}); refusing to overwrite it"
        raise BatchExistsError(msg) from exc


def _upload(store: ObjectStore, folder: str, files: dict[str, bytes], manifest: contract.Manifest) -> None:
    """Every file, then the manifest: a reader that finds the manifest finds the files it lists."""
    total = sum(len(d) for d in files.values())
    done, started = 0, time.perf_counter()
    try:
        for name, data in files.items():
            store.put(folder + name, data)
            done += len(data)
            rate = done / max(time.perf_counter() - started, 1e-6) / 1e6
            share = f"{done / max(total, 1):.0%} of {total / 1e6:.1f} MB"
            say(f"  {name}: {len(data) / 1e6:.1f} MB uploaded ({share}, {rate:.1f} MB/s)")
        store.put(folder + contract.MANIFEST, manifest.to_json())
    except ObjectStoreError as exc:
        msg = f"upload to {folder} failed (no manifest written, nothing announced): {exc}"
        raise PublishError(msg) from exc


def _retire(store: ObjectStore, folder: str, target: str) -> None:
    """Copy every object of ``folder`` under ``target`` (before it is replaced)."""
    try:
        for key in store.list(folder):
            store.put(target + key.removeprefix(folder), store.get(key))
    except ObjectStoreError as exc:
        msg = f"cannot keep a copy of {folder} under {target}: {exc}; nothing replaced"
        raise PublishError(msg) from exc


def snapshot_files(tables: dict[str, pa.Table]) -> dict[str, bytes]:
    return {name: to_parquet(tables[name]) for name in contract.BATCH_FILES}


def publish_owner_batch(
    store: ObjectStore,
    producer: Producer | None,
    topics: TopicNames,
    tables: dict[str, pa.Table],
    *,
    network: str,
    date: dt.date,
    window_days: int,
    replace: bool = False,
    now: dt.datetime | None = None,
    operator: Signer | None = None,
) -> contract.Manifest:
    """Upload checked tables as the (network, date, window) batch and announce it (``producer`` None: no event).

    A replacement's announcement is signed by ``operator`` when given: the validator opens a new
    version of an emitted date only for an operator's announcement.
    """
    files = snapshot_files(tables)
    new_id = batch_id(network, date, window_days, files)
    folder = contract.snapshot_key(network, date, window_days)
    key = folder + contract.MANIFEST
    when = now or dt.datetime.now(dt.UTC)
    old = existing_manifest(store, key)
    extra: dict[str, object] = {
        "source": OWNER,
        "rows": {n.removesuffix(".parquet"): t.num_rows for n, t in tables.items()},
    }
    if old is not None and old.batch_id == new_id:
        say(f"{key} already holds {new_id} (the same files): announcing it again")
        manifest = old
    else:
        if old is not None:
            if not replace:
                msg = (
                    f"{key} already holds batch {old.batch_id} (published {old.published_at.isoformat()}); "
                    f"this is a different batch ({new_id}). Nothing was changed. Use --replace to publish it as a "
                    "new batch: the old one is kept under retired/ and its labels stop applying"
                )
                raise BatchExistsError(msg)
            _retire(store, folder, retired_key("snapshots", network, date, window_days, old.batch_id))
            labels_folder = contract.labels_key(network, date, window_days)
            if store.exists(labels_folder + contract.MANIFEST):
                _retire(store, labels_folder, retired_key("labels", network, date, window_days, old.batch_id))
                say(f"labels of {old.batch_id} retired (kept under retired/labels/; they name the old batch id)")
            extra["replaces"] = old.batch_id
        entries = {
            name: contract.FileEntry(tables[name].num_rows, sha256_hex(data), len(data)) for name, data in files.items()
        }
        manifest = contract.Manifest(network, date, window_days, new_id, when, entries, "snapshot", extra=extra)
        _upload(store, folder, files, manifest)
    if producer is not None:
        kafka_key = contract.batch_key(network, date)
        signed = (operator, date) if operator is not None and old is not None else None
        emit_event(store, producer, topics.sot_batches, kafka_key, key, manifest.to_json(), when, reannounce=signed)
    return manifest


def check_due(date: dt.date, tau_days: int, now: dt.datetime) -> None:
    due = contract.labels_due_at(date, tau_days)
    if now < due:
        msg = f"labels of {date} are due at {due.isoformat()} (T + tau, tau {tau_days} days); it is {now.isoformat()}"
        raise LabelsNotDueError(msg)


def publish_owner_labels(
    store: ObjectStore,
    producer: Producer | None,
    topics: TopicNames,
    tables: dict[str, pa.Table],
    *,
    snapshot: contract.Manifest,
    tau_days: int,
    replace: bool = False,
    now: dt.datetime | None = None,
) -> contract.Manifest:
    """Upload checked ground truth of ``snapshot`` once it is due, then announce it on ``sot.labels``."""
    when = now or dt.datetime.now(dt.UTC)
    network, date, window = snapshot.network, snapshot.processing_date, snapshot.window_days
    check_due(date, tau_days, when)
    files = {name: to_parquet(tables[name]) for name in contract.LABEL_FILES}
    folder = contract.labels_key(network, date, window)
    key = folder + contract.MANIFEST
    entries = {
        name: contract.FileEntry(tables[name].num_rows, sha256_hex(data), len(data)) for name, data in files.items()
    }
    old = existing_manifest(store, key)
    if old is not None and old.batch_id == snapshot.batch_id and old.files == entries:
        say(f"{key} already holds these labels of {snapshot.batch_id}: announcing them again")
        manifest = old
    else:
        if old is not None and old.batch_id == snapshot.batch_id and not replace:
            msg = f"{key} already holds other labels of {snapshot.batch_id}; nothing was changed (use --replace)"
            raise BatchExistsError(msg)
        if old is not None:
            _retire(store, folder, retired_key("labels", network, date, window, old.batch_id))
        positives = int(pc.sum(tables["alert_labels.parquet"].column("label")).as_py() or 0)
        extra = {"source": OWNER, "alert_positives": positives}
        manifest = contract.Manifest(network, date, window, snapshot.batch_id, when, entries, "labels", extra=extra)
        _upload(store, folder, files, manifest)
    if producer is not None:
        emit_event(store, producer, topics.sot_labels, contract.batch_key(network, date), key, manifest.to_json(), when)
    return manifest
