"""Retention of the warehouse: score rows of dates beyond a window are removed, the history stays.

The bulky tables (ensemble and miner scores, one row per alert and miner) lose dates older than
the window; the per-miner history (weights, completions, validation verdicts: a few rows per
date) is kept, so leaderboards and performance pages still reach back. A date whose labels
are still due (within ``tau_days`` of today) is never removed, whatever the window.

    cutoff = warehouse_cutoff(newest, today, keep_days=30, tau_days=7)
    prune_warehouse(client, "riskstream", cutoff)
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from streams.errors import WarehouseError
from streams.warehouse_schema import check_database

log = logging.getLogger(__name__)

# ensemble_batches goes with its rows: a date without scores must not be listed as served
PRUNED_TABLES = ("ensemble_alert_scores", "ensemble_cluster_scores", "miner_submissions", "ensemble_batches")


def warehouse_cutoff(newest: dt.date, today: dt.date, *, keep_days: int, tau_days: int) -> dt.date:
    """Dates before this go: older than the window behind the newest date and past their labels."""
    return min(newest - dt.timedelta(days=keep_days), today - dt.timedelta(days=tau_days))


def newest_date(client: Any, database: str) -> dt.date | None:
    db = check_database(database)
    try:
        query = f"SELECT max(processing_date), count() FROM {db}.ensemble_batches"  # noqa: S608 db is checked
        found = client.query(query).result_rows[0]
    except Exception as exc:  # clickhouse-connect raises its own tree; one edge
        msg = f"cannot read the newest date of {db}: {exc}"
        raise WarehouseError(msg) from exc
    return found[0] if found[1] else None


def prune_warehouse(client: Any, database: str, cutoff: dt.date) -> None:
    """Remove the score rows of every date before ``cutoff`` (a mutation per table)."""
    db = check_database(database)
    for table in PRUNED_TABLES:
        try:
            client.command(
                f"ALTER TABLE {db}.{table} DELETE WHERE processing_date < {{cutoff:Date}}",
                parameters={"cutoff": cutoff},
                settings={"mutations_sync": 1},
            )
        except Exception as exc:  # clickhouse-connect raises its own tree; one edge
            msg = f"cannot prune {db}.{table} before {cutoff}: {exc}"
            raise WarehouseError(msg) from exc
    log.info("warehouse %s: score rows before %s removed", db, cutoff)


def apply_retention(client: Any, database: str, *, keep_days: int, tau_days: int, today: dt.date) -> dt.date | None:
    """Prune behind the newest stored date; returns the cutoff used (None: nothing stored yet)."""
    newest = newest_date(client, database)
    if newest is None:
        return None
    cutoff = warehouse_cutoff(newest, today, keep_days=keep_days, tau_days=tau_days)
    prune_warehouse(client, database, cutoff)
    return cutoff
