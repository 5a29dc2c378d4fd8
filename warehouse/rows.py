"""Decoded records as column-wise rows of the warehouse tables, one buffer per table.

Pure over plain values: a record (already decoded and checked against its topic) is appended to
the columns of its table; a record that does not fit raises ``ValueError`` with the reason, and
the caller dead-letters it.

    rows = TableRows()
    rows.add(ENSEMBLE_ALERT_SCORE, record, now, miner_topic=False)
    for table, columns in rows.tables(): client.insert(table, columns.columns(), ...)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

from streams.records import (
    ALERT_SCORE_BATCH,
    CLUSTER_SCORE_BATCH,
    ENSEMBLE_ALERT_SCORE,
    ENSEMBLE_BATCH,
    ENSEMBLE_CLUSTER_SCORE,
    SUBMISSION_COMPLETE,
    VALIDATION_RESULT,
)
from streams.warehouse_schema import BATCH_DEFAULTS, COLUMNS

# ensemble_batches and miner_weights rows are written from held batch markers, not per record
_PER_RECORD = ("ensemble_alert_scores", "ensemble_cluster_scores", "miner_submissions", "submission_completions",
               "validation_results")  # fmt: skip


class Columns:
    """Column-oriented rows for one table, in the order of its DDL.

    Whole rows (``add``, ``add_row``) are kept as tuples and turned into columns once, in
    ``columns``; ``extend`` appends to the columns directly.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.data: dict[str, list[Any]] = {n: [] for n in names}
        self._rows: list[tuple[Any, ...]] = []
        self.row_of = itemgetter(*self.names)  # a mapping's values in the order of the columns

    def __len__(self) -> int:
        return len(self.data[self.names[0]]) + len(self._rows)

    def add(self, **values: Any) -> None:
        self._rows.append(self.row_of(values))

    def add_row(self, row: tuple[Any, ...]) -> None:
        """One row, its values in the order of ``names``."""
        self._rows.append(row)

    def extend(self, count: int, arrays: Mapping[str, Sequence[Any]], scalars: Mapping[str, Any]) -> None:
        for name in self.names:
            if name in arrays:
                self.data[name].extend(arrays[name])
            else:
                self.data[name].extend([scalars[name]] * count)

    def columns(self) -> list[list[Any]]:
        if self._rows:
            for name, column in zip(self.names, zip(*self._rows, strict=True), strict=True):
                self.data[name].extend(column)
            self._rows = []
        return [self.data[n] for n in self.names]


_CONTRIBUTOR = itemgetter("miner_id", "weight", "score")  # the fields of top_contributors' tuples
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


def ticks_ms(at: dt.datetime) -> int:
    """A UTC time as the integer a ``DateTime64(3)`` column stores (the client converts ints for free)."""
    return (at - _EPOCH) // _MS


def unsigned(value: int, name: str) -> int:
    if value < 0:
        msg = f"{name} must not be negative: {value}"
        raise ValueError(msg)
    return value


class TableRows:
    """Rows of one flush, per table; batch markers (``EnsembleBatch``) are handed back, not buffered."""

    def __init__(self) -> None:
        self._tables = {name: Columns(COLUMNS[name]) for name in _PER_RECORD}

    def __len__(self) -> int:
        return sum(len(c) for c in self._tables.values())

    def tables(self) -> Iterator[tuple[str, Columns]]:
        yield from self._tables.items()

    def add(self, name: str, r: Mapping[str, Any], now: dt.datetime, *, miner_topic: bool) -> Mapping[str, Any] | None:
        """Append ``r`` to its table; return it if it is a batch marker; ``ValueError`` if it does not fit."""
        tables = self._tables
        if name in (ENSEMBLE_ALERT_SCORE, ENSEMBLE_CLUSTER_SCORE) and not miner_topic:
            columns = tables["ensemble_alert_scores" if name == ENSEMBLE_ALERT_SCORE else "ensemble_cluster_scores"]
            for key in ("version", "miner_count", "rank"):
                unsigned(r[key], key)
            for contributor in r["top_contributors"]:
                _CONTRIBUTOR(contributor)  # KeyError (rejected) for one without a field, never a failed insert
            # the contributors go as they were decoded: the client writes a named tuple's dicts ~3x faster
            columns.add_row(columns.row_of({**r, "ingested_at": ticks_ms(now)}))
        elif name == ENSEMBLE_BATCH and not miner_topic:
            unsigned(r["version"], "version")
            return r
        elif name == VALIDATION_RESULT and not miner_topic:
            tables["validation_results"].add(
                **{k: r[k] for k in COLUMNS["validation_results"] if k != "version"},
                version=unsigned(r["version"], "version"),
            )
        elif name == ALERT_SCORE_BATCH and miner_topic:
            count = len(r["alert_ids"])
            if len(r["scores"]) != count or len(r["ranks"]) != count:
                lengths = f"{count} ids, {len(r['scores'])} scores, {len(r['ranks'])} ranks"
                msg = f"alert chunk arrays differ in length: {lengths}"
                raise ValueError(msg)
            if min(r["ranks"], default=0) < 0:
                msg = "alert chunk has negative ranks"
                raise ValueError(msg)
            tables["miner_submissions"].extend(
                count,
                {"entity_id": r["alert_ids"], "score": r["scores"], "rank": r["ranks"]},
                {**r, "entity_type": "alert", "produced_at": ticks_ms(r["produced_at"])},
            )
        elif name == CLUSTER_SCORE_BATCH and miner_topic:
            count = len(r["cluster_ids"])
            if len(r["scores"]) != count:
                msg = f"cluster chunk arrays differ in length: {count} ids, {len(r['scores'])} scores"
                raise ValueError(msg)
            tables["miner_submissions"].extend(
                count,
                {"entity_id": r["cluster_ids"], "score": r["scores"]},
                {**r, "entity_type": "cluster", "rank": 0, "produced_at": ticks_ms(r["produced_at"])},
            )
        elif name == SUBMISSION_COMPLETE and miner_topic:
            for key in ("window_days", "alert_count", "cluster_count", "alert_chunks", "cluster_chunks"):
                unsigned(r[key], key)
            tables["submission_completions"].add(**{k: r[k] for k in COLUMNS["submission_completions"]})
        else:
            msg = f"{name} is not a record the warehouse stores (from this topic)"
            raise ValueError(msg)
        return None


def marker_rows(markers: Sequence[Mapping[str, Any]], now: dt.datetime) -> tuple[Columns, Columns]:
    """The ``ensemble_batches`` and ``miner_weights`` rows of batch markers whose versions are complete."""
    batches = Columns(COLUMNS["ensemble_batches"])
    weights = Columns(COLUMNS["miner_weights"])
    for r in markers:
        batches.add(
            **{
                k: r.get(k, BATCH_DEFAULTS.get(k))
                for k in COLUMNS["ensemble_batches"]
                if k not in ("miners", "ingested_at")
            },
            miners=[(m["miner_id"], m["weight"], m["immediate_score"], m["completed"]) for m in r["miners"]],
            ingested_at=now,
        )
        for m in r["miners"]:
            weights.add(network=r["network"], processing_date=r["processing_date"], version=r["version"], **m)
    return batches, weights
