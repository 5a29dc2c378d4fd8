"""sot prune: labelled dates beyond the window go (batch, labels, traps); a date whose labels are due stays."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sot.retention import prune
from streams import batch as contract
from streams.objectstore import FileObjectStore

TODAY = dt.date(2026, 3, 1)


def _write_date(store: FileObjectStore, private: FileObjectStore, date: dt.date, labelled: bool) -> None:
    for name in ("alerts.parquet", contract.MANIFEST):
        store.put(contract.snapshot_key("ethereum", date, 7, name), b"x" * 10)
    private.put(contract.traps_key("ethereum", date, 7, "traps.parquet"), b"t")
    if labelled:
        for name in ("alert_labels.parquet", contract.MANIFEST):
            store.put(contract.labels_key("ethereum", date, 7, name), b"l")


def test_old_labelled_dates_go_and_the_rest_stays(tmp_path: Path) -> None:
    store, private = FileObjectStore(tmp_path / "store"), FileObjectStore(tmp_path / "private")
    old, unlabelled, recent = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 2, 25)
    _write_date(store, private, old, labelled=True)
    _write_date(store, private, unlabelled, labelled=False)
    _write_date(store, private, recent, labelled=True)
    store.put("models/keep-me.json", b"{}")

    dry = prune(store, private, keep_days=30, today=TODAY, dry_run=True)
    assert dry.removed_dates == [("ethereum", old)] and store.exists(
        contract.snapshot_key("ethereum", old, 7, "alerts.parquet")
    )

    report = prune(store, private, keep_days=30, today=TODAY)
    assert report.removed_dates == [("ethereum", old)]
    assert report.kept_unlabelled == [("ethereum", unlabelled)]
    assert report.removed_objects == 5
    assert not any(old.isoformat() in k for k in store.list() + private.list())
    assert not (tmp_path / "store" / "snapshots" / "ethereum" / old.isoformat()).exists()  # no empty folders left
    assert store.exists(contract.snapshot_key("ethereum", unlabelled, 7, contract.MANIFEST))
    assert private.exists(contract.traps_key("ethereum", unlabelled, 7, "traps.parquet"))
    assert store.exists(contract.labels_key("ethereum", recent, 7, contract.MANIFEST))
    assert store.exists("models/keep-me.json")
    assert prune(store, private, keep_days=30, today=TODAY).removed_dates == []  # idempotent
