"""An owner's files against the batch contract: every problem found, and the casts that make them fit.

Vectorised over whole columns (pyarrow.compute); nothing is looked at row by row.

    report = check_batch(read_files(store, BATCH_NAMES), network="torus", date=d, window_days=7)
    print(report.render()); report.ok, report.tables["alerts.parquet"]

``report.tables`` holds the files in the contract's types (casts applied, extra columns
dropped) and is only complete when ``report.ok``.
"""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from streams.batch import BATCH_FILES, LABEL_FILES
from streams.contract import SPECS, FileSpec
from streams.objectstore import ObjectStore
from streams.progress import say

REQUIRED = ("alerts.parquet", "features.parquet")  # the others may be absent: published empty


@dataclass(frozen=True, slots=True)
class Problem:
    """One defect: which file, which column (``-`` for the file), how many rows, what is wrong."""

    file: str
    column: str
    count: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}: {self.column}: {self.what} ({self.count} rows)"


@dataclass(frozen=True, slots=True)
class Cast:
    file: str
    column: str
    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.file}: {self.column}: {self.source} -> {self.target} (lossless)"


@dataclass(slots=True)
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    casts: list[Cast] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: dict[str, pa.Table] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = [f"{len(self.problems)} problem(s)"]
        lines += [f"  problem  {p}" for p in self.problems]
        lines += [f"  cast     {c}" for c in self.casts]
        lines += [f"  note     {n}" for n in self.notes]
        lines += [f"  rows     {name}: {t.num_rows}" for name, t in sorted(self.tables.items())]
        return "\n".join(lines)


def read_files(store: ObjectStore, names: Iterable[str], prefix: str = "") -> dict[str, bytes | None]:
    """The bytes of each named file under ``prefix`` (None when absent)."""
    found: dict[str, bytes | None] = {}
    for name in names:
        started = time.perf_counter()
        # an unreachable store raises ObjectStoreError: never taken for an absent file
        data = found[name] = store.get(prefix + name) if store.exists(prefix + name) else None
        if data is not None and len(data) > 1 << 20:  # progress for large files
            say(f"  {name}: {len(data) / 1e6:.1f} MB read in {time.perf_counter() - started:.1f}s")
    return found


def _count(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.sum(pc.cast(pc.fill_null(mask, False), pa.int64())).as_py() or 0)


_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_INTEGER = r"^\s*[+-]?\d+\s*$"


def _lossy_rows(column: pa.ChunkedArray, target: pa.DataType) -> int:
    """Rows that change (or do not convert) when cast to ``target``: the reason a safe cast failed."""
    text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    if text and (pa.types.is_integer(target) or pa.types.is_floating(target)):
        pattern = _INTEGER if pa.types.is_integer(target) else _NUMBER
        return _count(pc.invert(pc.match_substring_regex(column, pattern)))
    try:
        there = pc.cast(column, target, safe=False)
        back = pc.cast(there, column.type, safe=False)
        return _count(pc.not_equal(back, column)) + _count(pc.and_not(pc.is_null(there), pc.is_null(column)))
    except (pa.ArrowException, NotImplementedError):
        return int(len(column) - column.null_count)


Columns = dict[str, pa.ChunkedArray]


def _conform(name: str, table: pa.Table, spec: FileSpec, report: CheckReport, *, assume_utc: bool) -> Columns:
    """Each contract column that is present and casts losslessly, in the contract's type; problems for the rest."""
    rows = table.num_rows
    columns: Columns = {}
    for extra in (n for n in table.column_names if n not in spec.schema.names):
        report.problems.append(Problem(name, extra, rows, "extra column, not in the contract (drop or rename it)"))
    for col in spec.columns:
        if col.name not in table.column_names:
            report.problems.append(Problem(name, col.name, rows, f"missing column ({col.type})"))
            continue
        values = table.column(col.name)
        if values.type != col.type:
            source = values.type
            naive = pa.types.is_timestamp(source) and source.tz is None and pa.types.is_timestamp(col.type)
            if naive and not assume_utc:
                what = f"timestamp without time zone ({source}); refused unless --assume-utc"
                report.problems.append(Problem(name, col.name, rows - values.null_count, what))
                continue
            try:
                values = pc.cast(values, col.type, safe=True)
                report.casts.append(Cast(name, col.name, str(source) + (" as UTC" if naive else ""), str(col.type)))
            except (pa.ArrowException, NotImplementedError):
                what = f"type {source} does not cast losslessly to {col.type}"
                report.problems.append(Problem(name, col.name, _lossy_rows(values, col.type), what))
                continue
        if (col.key or not col.nullable) and values.null_count:
            report.problems.append(Problem(name, col.name, values.null_count, "nulls in a column that is never null"))
        columns[col.name] = values
    for column in spec.unique:
        if column in columns:
            present = columns[column].drop_null()
            duplicates = len(present) - int(pc.count_distinct(present).as_py())
            if duplicates:
                report.problems.append(Problem(name, column, duplicates, "duplicate ids"))
    return columns


def _missing_from(values: pa.ChunkedArray | pa.Array, known: pa.ChunkedArray) -> int:
    """How many non-null ``values`` are not among ``known``."""
    values = values.drop_null()
    if not len(values):
        return 0
    return _count(pc.invert(pc.is_in(values, value_set=known.combine_chunks())))


def load_tables(
    files: Mapping[str, bytes | None], names: Iterable[str], report: CheckReport, *, assume_utc: bool
) -> dict[str, Columns]:
    """Parse and conform each named file; absent files are problems only when required."""
    found: dict[str, Columns] = {}
    for name in names:
        spec = SPECS[name]
        data = files.get(name)
        if data is None:
            if name in REQUIRED or name == "alert_labels.parquet":
                report.problems.append(Problem(name, "-", 0, "file missing"))
            else:
                report.notes.append(f"{name}: absent, published as an empty file")
                found[name] = {c.name: pa.chunked_array([], c.type) for c in spec.columns}
            continue
        try:
            raw = pq.read_table(io.BytesIO(data))
        except (pa.ArrowException, OSError) as exc:
            report.problems.append(Problem(name, "-", 0, f"not a parquet file: {exc}"))
            continue
        found[name] = _conform(name, raw, spec, report, assume_utc=assume_utc)
    return found


def _complete(found: dict[str, Columns]) -> dict[str, pa.Table]:
    return {
        name: pa.table([cols[c] for c in SPECS[name].schema.names], schema=SPECS[name].schema)
        for name, cols in found.items()
        if all(c in cols for c in SPECS[name].schema.names)
    }


def check_batch(
    files: Mapping[str, bytes | None],
    *,
    network: str,
    date: dt.date,
    window_days: int,
    assume_utc: bool = False,
) -> CheckReport:
    """Every problem of an owner's snapshot files (``files``: name -> bytes or None)."""
    report = CheckReport()
    found = load_tables(files, BATCH_FILES, report, assume_utc=assume_utc)
    alerts, features = found.get("alerts.parquet", {}), found.get("features.parquet", {})
    clusters, flows = found.get("clusters.parquet", {}), found.get("money_flows.parquet", {})
    problem = report.problems.append
    if "alerts.parquet" in found and not any(len(c) for c in alerts.values()):
        problem(Problem("alerts.parquet", "-", 0, "no alerts"))
    for column, wanted in (("processing_date", date), ("window_days", window_days), ("network", network)):
        if column in alerts:
            wrong = _count(pc.not_equal(alerts[column], pa.scalar(wanted, alerts[column].type)))
            if wrong:
                problem(Problem("alerts.parquet", column, wrong, f"not the batch's {column} {wanted}"))
    if "address" in alerts and "address" in features:
        orphans = _missing_from(alerts["address"], features["address"])
        if orphans:
            problem(Problem("alerts.parquet", "address", orphans, "no features row for the address"))
    if "cluster_id" in alerts and "cluster_id" in clusters:
        unknown = _missing_from(alerts["cluster_id"], clusters["cluster_id"])
        if unknown:
            problem(Problem("alerts.parquet", "cluster_id", unknown, "not in clusters.parquet"))
    if "alert_id" in alerts and "related_alert_ids" in clusters:
        strays = _missing_from(pc.list_flatten(clusters["related_alert_ids"]), alerts["alert_id"])
        if strays:
            problem(Problem("clusters.parquet", "related_alert_ids", strays, "ids not in alerts"))
    if "amount_usd_sum" in flows:
        amount = flows["amount_usd_sum"]
        bad = _count(pc.or_(pc.less(amount, 0.0), pc.invert(pc.is_finite(amount))))
        if bad:
            problem(Problem("money_flows.parquet", "amount_usd_sum", bad, "negative or not finite"))
    report.tables = _complete(found)
    return report


def check_labels(
    files: Mapping[str, bytes | None], alert_ids: pa.ChunkedArray, cluster_ids: pa.ChunkedArray
) -> CheckReport:
    """Every problem of an owner's ground truth against the ids of the published batch it labels."""
    report = CheckReport()
    found = load_tables(files, LABEL_FILES, report, assume_utc=False)
    for name, ids, column in (
        ("alert_labels.parquet", alert_ids, "alert_id"),
        ("cluster_labels.parquet", cluster_ids, "cluster_id"),
    ):
        cols = found.get(name, {})
        if column in cols:
            unknown = _missing_from(cols[column], ids)
            if unknown:
                report.problems.append(Problem(name, column, unknown, "ids not in the published batch"))
            unlabelled = _missing_from(ids, cols[column])
            if unlabelled:
                report.problems.append(Problem(name, column, unlabelled, "ids of the published batch without a label"))
        if "label" in cols:
            wrong = _count(pc.invert(pc.is_in(cols["label"], value_set=pa.array([0, 1], pa.int8()))))
            if wrong:
                report.problems.append(Problem(name, "label", wrong, "label is not 0 or 1"))
    report.tables = _complete(found)
    return report
