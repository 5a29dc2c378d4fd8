"""Warehouse retention on chDB: score rows of old dates go, the miner history and due dates stay."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from streams.retention import apply_retention, warehouse_cutoff
from streams.warehouse_schema import create_tables

pytestmark = pytest.mark.integration


def _count(client: Any, db: str, table: str) -> dict[str, int]:
    rows = client.query(f"SELECT toString(processing_date), count() FROM {db}.{table} GROUP BY 1").result_rows
    return dict(rows)


def test_old_score_rows_go_and_history_stays(clickhouse: Any) -> None:
    db = f"r_{uuid.uuid4().hex[:10]}"
    create_tables(clickhouse, db)
    dates = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(0, 40, 5)]  # Jan 1 .. Feb 5
    for date in dates:
        for table, key in (("ensemble_alert_scores", "alert_id"), ("miner_submissions", "entity_id")):
            clickhouse.command(
                f"INSERT INTO {db}.{table} (network, processing_date, {key}) VALUES "
                + ", ".join(f"('ethereum', '{date}', 'a{i}')" for i in range(3))
            )
        for table in ("ensemble_batches", "miner_weights", "validation_results"):
            clickhouse.command(f"INSERT INTO {db}.{table} (network, processing_date) VALUES ('ethereum', '{date}')")
    today = dt.date(2026, 2, 9)
    cutoff = apply_retention(clickhouse, db, keep_days=20, tau_days=7, today=today)
    assert cutoff == dt.date(2026, 1, 16) == warehouse_cutoff(dates[-1], today, keep_days=20, tau_days=7)
    kept = [d.isoformat() for d in dates if d >= cutoff]
    assert sorted(_count(clickhouse, db, "ensemble_alert_scores")) == kept
    assert sorted(_count(clickhouse, db, "miner_submissions")) == kept
    assert sorted(_count(clickhouse, db, "ensemble_batches")) == kept
    assert len(_count(clickhouse, db, "miner_weights")) == len(dates)  # history is kept
    assert len(_count(clickhouse, db, "validation_results")) == len(dates)


def test_a_date_whose_labels_are_due_is_never_removed() -> None:
    newest, today = dt.date(2026, 2, 5), dt.date(2026, 2, 6)
    assert warehouse_cutoff(newest, today, keep_days=1, tau_days=7) == dt.date(2026, 1, 30)
