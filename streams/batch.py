"""The SOT's batch contract: object layout, parquet schemas, manifests, labels and traps, and its reader.

The data owner writes it, miners and the validator read it; neither imports the other, so
the contract lives here beside the Avro schemas. Both read a published batch with the same
verifying reader, so they accept and reject exactly the same batches:

    key = snapshot_key("ethereum", date(2026, 1, 2), 7, MANIFEST)
    batch = read_batch(store, key)          # every file: listed, sha256, rows, contract types
    batch.alerts.num_rows
    labels = labels_for(store, batch.manifest)   # None until the ground truth is published

``read_batch``/``read_labels`` raise ``streams.errors.BatchRejected`` (``MissingFileError``,
``ChecksumError``, ``BatchSchemaError``) with ``key`` (the object) and ``reason``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streams.contract import NETWORK_PATTERN as NETWORK_PATTERN  # re-exported: part of the contract
from streams.contract import SCHEMA_VERSION as SCHEMA_VERSION
from streams.contract import SPECS
from streams.errors import (
    BatchSchemaError,
    ChecksumError,
    ConfigError,
    EventError,
    MissingFileError,
    ObjectStoreError,
)
from streams.objectstore import ObjectStore, sha256_hex

_NETWORK = re.compile(NETWORK_PATTERN)
DEFAULT_WINDOW_DAYS = 7
DEFAULT_TAU_DAYS = 7  # labels of date T are due at T + tau
MANIFEST = "manifest.json"
RISK_LEVELS = ("low", "medium", "high", "critical")
SEVERITIES = ("low", "medium", "high", "critical")

# the schemas are built from the documented columns of streams.contract (docs/batch-contract.md)
ALERTS = SPECS["alerts.parquet"].schema
FEATURES = SPECS["features.parquet"].schema
CLUSTERS = SPECS["clusters.parquet"].schema
MONEY_FLOWS = SPECS["money_flows.parquet"].schema
# public labels known before the processing date (partial): never the ground truth of the date
ADDRESS_LABELS = SPECS["address_labels.parquet"].schema
# ground truth of one date, published at T + tau under labels/
ALERT_LABELS = SPECS["alert_labels.parquet"].schema
CLUSTER_LABELS = SPECS["cluster_labels.parquet"].schema
# validator-only: alerts of the batch whose answer is known in advance
TRAPS = SPECS["traps.parquet"].schema

BATCH_FILES: dict[str, pa.Schema] = {
    "alerts.parquet": ALERTS,
    "features.parquet": FEATURES,
    "clusters.parquet": CLUSTERS,
    "money_flows.parquet": MONEY_FLOWS,
    "address_labels.parquet": ADDRESS_LABELS,
}
LABEL_FILES: dict[str, pa.Schema] = {"alert_labels.parquet": ALERT_LABELS, "cluster_labels.parquet": CLUSTER_LABELS}
TRAP_FILES: dict[str, pa.Schema] = {"traps.parquet": TRAPS}


def check_network(name: str) -> str:
    """``name`` if it is a network name (``NETWORK_PATTERN``), else ``ConfigError``."""
    if not _NETWORK.fullmatch(name):
        msg = f"not a network name: {name!r} (must match {NETWORK_PATTERN}: lower-case letters, digits, _ and -)"
        raise ConfigError(msg)
    return name


def labels_due_at(processing_date: dt.date, tau_days: int = DEFAULT_TAU_DAYS) -> dt.datetime:
    """When the labels of a date may be published and applied: 00:00 UTC of T + tau (one rule for all)."""
    return dt.datetime.combine(processing_date + dt.timedelta(days=tau_days), dt.time(0), tzinfo=dt.UTC)


def snapshot_key(network: str, date: dt.date, window_days: int, name: str = "") -> str:
    return f"snapshots/{network}/{date.isoformat()}/{window_days}/{name}"


def labels_key(network: str, date: dt.date, window_days: int, name: str = "") -> str:
    return f"labels/{network}/{date.isoformat()}/{window_days}/{name}"


def traps_key(network: str, date: dt.date, window_days: int, name: str = "") -> str:
    return f"validator-private/traps/{network}/{date.isoformat()}/{window_days}/{name}"


def batch_key(network: str, date: dt.date) -> str:
    """Kafka key of sot.* events and ensemble.batches records."""
    return f"{network}:{date.isoformat()}"


@dataclass(frozen=True, slots=True)
class FileEntry:
    rows: int
    sha256: str
    bytes: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """What one published folder holds; ``kind`` is snapshot, labels or traps."""

    network: str
    processing_date: dt.date
    window_days: int
    batch_id: str
    published_at: dt.datetime
    files: dict[str, FileEntry]
    kind: str = "snapshot"
    schema_version: str = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "network": self.network,
                "processing_date": self.processing_date.isoformat(),
                "window_days": self.window_days,
                "batch_id": self.batch_id,
                "kind": self.kind,
                "schema_version": self.schema_version,
                "published_at": self.published_at.astimezone(dt.UTC).isoformat(),
                "files": {n: {"rows": f.rows, "sha256": f.sha256, "bytes": f.bytes} for n, f in self.files.items()},
                "extra": self.extra,
            },
            option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS,
        )

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            raw = orjson.loads(data)
            return cls(
                network=str(raw["network"]),
                processing_date=dt.date.fromisoformat(raw["processing_date"]),
                window_days=int(raw["window_days"]),
                batch_id=str(raw["batch_id"]),
                published_at=dt.datetime.fromisoformat(raw["published_at"]),
                files={
                    str(n): FileEntry(int(f["rows"]), str(f["sha256"]), int(f["bytes"]))
                    for n, f in raw["files"].items()
                },
                kind=str(raw.get("kind", "snapshot")),
                schema_version=str(raw.get("schema_version", SCHEMA_VERSION)),
                extra=dict(raw.get("extra", {})),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            msg = f"not a batch manifest: {type(exc).__name__}: {exc}"
            raise EventError(msg) from exc


# ---- the verifying reader -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Batch:
    """The verified tables of one snapshot, in the contract's column order and types."""

    manifest: Manifest
    key: str  # object key of the manifest
    alerts: pa.Table
    features: pa.Table
    clusters: pa.Table
    money_flows: pa.Table | FlowFile  # the largest file: verified, kept as parquet, read in slices
    address_labels: pa.Table


@dataclass(frozen=True, slots=True)
class Labels:
    """The verified ground truth of one date."""

    manifest: Manifest
    key: str
    alerts: pa.Table  # ALERT_LABELS
    clusters: pa.Table  # CLUSTER_LABELS


def read_manifest(store: ObjectStore, key: str, kind: str | None = None) -> Manifest:
    """The manifest at ``key``; ``kind`` (snapshot, labels, traps) must match when given."""
    try:
        data = store.get(key)
    except ObjectStoreError as exc:
        raise MissingFileError(key, f"no manifest: {exc}") from exc
    try:
        manifest = Manifest.from_json(data)
    except EventError as exc:
        raise BatchSchemaError(key, str(exc)) from exc
    if kind is not None and manifest.kind != kind:
        raise BatchSchemaError(key, f"a {manifest.kind} manifest, not a {kind} manifest")
    return manifest


FLOW_SLICE_ROWS = 65_536


def _refuse_naive(key: str, name: str, found: pa.DataType, wanted: pa.DataType) -> None:
    if pa.types.is_timestamp(found) and found.tz is None and pa.types.is_timestamp(wanted):
        raise BatchSchemaError(key, f"column {name}: {found} has no time zone, the contract is {wanted}")


def _castable(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether an empty array of ``source`` casts to ``target`` (the test ``Table.cast`` makes first)."""
    try:
        pa.array([], source).cast(target)
    except (pa.ArrowException, NotImplementedError):
        return False
    return True


class FlowFile:
    """A verified money_flows parquet file, read in projected slices in the contract's types.

    flows = FlowFile(data, "snapshots/.../money_flows.parquet")
    for part in flows.batches(("from_address", "amount_usd_sum")): ...

    The schema is checked on construction; values that need a cast are checked as slices are
    read (``check_values`` reads them all once, which ``read_batch`` does before accepting).
    """

    def __init__(self, data: bytes, key: str, *, batch_rows: int = FLOW_SLICE_ROWS) -> None:
        self.key = key
        self.batch_rows = batch_rows
        self._data = data
        try:
            self._file = pq.ParquetFile(pa.BufferReader(data), buffer_size=1 << 20)  # page by page, zero-copy
            schema = self._file.schema_arrow
        except (pa.ArrowException, OSError) as exc:
            raise BatchSchemaError(key, f"not readable parquet: {exc}") from exc
        missing = [f.name for f in MONEY_FLOWS if f.name not in schema.names]
        if missing:
            raise BatchSchemaError(key, f"missing column(s) {', '.join(missing)}")
        for f in MONEY_FLOWS:
            found = schema.field(f.name).type
            _refuse_naive(key, f.name, found, f.type)
            if found != f.type and not _castable(found, f.type):
                raise BatchSchemaError(key, f"column {f.name} is {found}, the contract says {f.type}")
        self.needs_cast = any(schema.field(f.name).type != f.type for f in MONEY_FLOWS)
        self.num_rows = int(self._file.metadata.num_rows)

    def batches(self, columns: tuple[str, ...] = tuple(MONEY_FLOWS.names)) -> Iterator[pa.RecordBatch]:
        """The ``columns`` in file order, ``batch_rows`` rows at a time, cast to the contract's types."""
        target = pa.schema([MONEY_FLOWS.field(c) for c in columns])
        try:
            for part in self._file.iter_batches(batch_size=self.batch_rows, columns=list(columns), use_threads=False):
                yield part.select(list(columns)).cast(target)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise BatchSchemaError(self.key, f"unreadable or off-contract values: {exc}") from exc

    def check_values(self) -> None:
        """Read every slice once when a column needs a cast, so a bad value is found now, not later."""
        if self.needs_cast:
            for _ in self.batches():
                pass

    def read_all(self) -> pa.Table:
        """The whole table in the contract's columns (for small files and checks, not for features)."""
        return pa.Table.from_batches(list(self.batches()), MONEY_FLOWS)


def conform(table: pa.Table, schema: pa.Schema, key: str) -> pa.Table:
    """The contract's columns in its order and types (value-checked casts); extra columns are dropped.

    A timestamp without a time zone is refused: the contract's instants are UTC, and a naive
    one could mean any zone.
    """
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise BatchSchemaError(key, f"missing column(s) {', '.join(missing)}")
    columns = []
    for f in schema:
        column = table.column(f.name)
        if column.type != f.type:
            if pa.types.is_timestamp(column.type) and column.type.tz is None and pa.types.is_timestamp(f.type):
                raise BatchSchemaError(
                    key, f"column {f.name}: {column.type} has no time zone, the contract is {f.type}"
                )
            try:
                column = pc.cast(column, f.type, safe=True)
            except (pa.ArrowException, ValueError) as exc:
                raise BatchSchemaError(key, f"column {f.name}: {column.type} does not cast to {f.type}: {exc}") from exc
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _verified_bytes(store: ObjectStore, folder: str, manifest: Manifest, name: str) -> bytes:
    key = folder + name
    entry = manifest.files.get(name)
    if entry is None:
        raise MissingFileError(key, f"not listed in the manifest {folder}{MANIFEST}")
    try:
        data = store.get(key)
    except ObjectStoreError as exc:
        raise MissingFileError(key, f"listed in the manifest but not in the store: {exc}") from exc
    digest = sha256_hex(data)
    if digest != entry.sha256:
        raise ChecksumError(key, f"sha256 {digest[:12]}... does not match the manifest's {entry.sha256[:12]}...")
    return data


def _check_rows(key: str, rows: int, entry: FileEntry) -> None:
    if rows != entry.rows:
        raise ChecksumError(key, f"{rows} rows, the manifest says {entry.rows}")


def _read_file(store: ObjectStore, folder: str, manifest: Manifest, name: str, schema: pa.Schema) -> pa.Table:
    data = _verified_bytes(store, folder, manifest, name)
    try:
        table = pq.read_table(pa.BufferReader(data))  # zero-copy reads of the downloaded bytes
    except (pa.ArrowException, OSError) as exc:
        raise BatchSchemaError(folder + name, f"not a parquet file: {exc}") from exc
    _check_rows(folder + name, table.num_rows, manifest.files[name])
    return conform(table, schema, folder + name)


def _read_flows(store: ObjectStore, folder: str, manifest: Manifest) -> FlowFile:
    name = "money_flows.parquet"
    flows = FlowFile(_verified_bytes(store, folder, manifest, name), folder + name)
    _check_rows(folder + name, flows.num_rows, manifest.files[name])
    flows.check_values()
    return flows


def read_batch(store: ObjectStore, manifest_key: str) -> Batch:
    """Read a snapshot manifest and every file of the contract, verifying each; raises ``BatchRejected``."""
    manifest = read_manifest(store, manifest_key, "snapshot")
    folder = manifest_key.removesuffix(MANIFEST)
    tables = {
        name: _read_file(store, folder, manifest, name, schema)
        for name, schema in BATCH_FILES.items()
        if name != "money_flows.parquet"
    }
    return Batch(
        manifest=manifest,
        key=manifest_key,
        alerts=tables["alerts.parquet"],
        features=tables["features.parquet"],
        clusters=tables["clusters.parquet"],
        money_flows=_read_flows(store, folder, manifest),
        address_labels=tables["address_labels.parquet"],
    )


def read_labels(store: ObjectStore, manifest_key: str) -> Labels:
    """Read a labels manifest and both label files, verifying each; raises ``BatchRejected``."""
    manifest = read_manifest(store, manifest_key, "labels")
    folder = manifest_key.removesuffix(MANIFEST)
    tables = {name: _read_file(store, folder, manifest, name, schema) for name, schema in LABEL_FILES.items()}
    return Labels(manifest, manifest_key, tables["alert_labels.parquet"], tables["cluster_labels.parquet"])


def labels_for(store: ObjectStore, snapshot: Manifest) -> Labels | None:
    """The ground truth of this snapshot, or None while there is none.

    Labels name the ``batch_id`` they label: labels of a batch that was since replaced are not
    this snapshot's and give None.
    """
    key = labels_key(snapshot.network, snapshot.processing_date, snapshot.window_days, MANIFEST)
    if not store.exists(key):
        return None
    labels = read_labels(store, key)
    return labels if labels.manifest.batch_id == snapshot.batch_id else None
