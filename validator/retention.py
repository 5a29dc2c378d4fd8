"""Retention: which dates the validator still keeps; the one rule of the single and the partitioned worker.

A date is kept while it is not older than the newest date of any round (the ``batches`` table)
minus ``VALIDATOR_RETENTION_DAYS``. An older date's state is dropped: its chunks, counted facts and
kept ensembles (``expire_tables``) and whatever else a worker keys by the date or the round.

    cutoff = retention_cutoff(tables.batches, settings.retention_days)   # None: no round yet
    dropped = expire_tables(tables, intake.decoded, cutoff)
    expired("2026-01-02|ethereum", cutoff)                               # any date-first key
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, MutableMapping
from typing import Any

from validator.tables import Table, ValidatorTables, date_of_key

EXPIRING = ("chunks", "stats", "ensembles")  # the tables whose old dates one worker drops


def retention_cutoff(batches: Table, days: int) -> dt.date | None:
    """Dates before this are expired (None while no round is known)."""
    dates = [d for d in (date_of_key(k) for k in list(batches)) if d is not None]
    return max(dates) - dt.timedelta(days=days) if dates else None


def expired(key: str | dt.date, cutoff: dt.date | None) -> bool:
    """The date (or the date a date-first key starts with) is older than the cutoff."""
    day = key if isinstance(key, dt.date) else date_of_key(key)
    return cutoff is not None and day is not None and day < cutoff


def drop_expired(mapping: MutableMapping[str, Any], cutoff: dt.date | None) -> int:
    """Delete the entries whose date-first key is expired; returns how many."""
    old = [k for k in list(mapping.keys()) if expired(k, cutoff)]
    for key in old:
        del mapping[key]
    return len(old)


def expire_tables(
    tables: ValidatorTables,
    decoded: MutableMapping[str, Any],
    cutoff: dt.date | None,
    names: Iterable[str] = EXPIRING,
) -> int:
    """Drop the expired dates of the named tables and of the chunks decoded on arrival; returns the rows dropped."""
    drop_expired(decoded, cutoff)
    return sum(drop_expired(getattr(tables, name), cutoff) for name in names)


__all__ = ["EXPIRING", "drop_expired", "expire_tables", "expired", "retention_cutoff"]
