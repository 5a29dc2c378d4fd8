"""Retention of the data owner's store: batches, labels and traps of dates beyond a window are removed.

A date is removed only once its ground truth has been published (its labels exist): a date
whose labels are still due keeps its batch, however old, so that the labels can still be
judged against it. Dates inside the window stay whatever their state.

    report = prune(store, private, keep_days=30, today=dt.date.today())
    report.removed_dates   # [(network, date), ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sot.settings import SotSettings
from streams import batch as contract
from streams.objectstore import ObjectStore, open_stack_store
from streams.progress import say

_AREAS = ("snapshots", "labels")


@dataclass(frozen=True, slots=True)
class PruneReport:
    removed_dates: list[tuple[str, dt.date]] = field(default_factory=list)
    kept_unlabelled: list[tuple[str, dt.date]] = field(default_factory=list)  # beyond the window, labels due
    removed_objects: int = 0


def _dated_keys(store: ObjectStore, area: str) -> dict[tuple[str, dt.date], list[str]]:
    """``area/<network>/<date>/...`` keys grouped by (network, date); other keys are ignored."""
    found: dict[tuple[str, dt.date], list[str]] = defaultdict(list)
    depth = area.count("/") + 1
    for key in store.list(f"{area}/"):
        parts = key.split("/")
        if len(parts) < depth + 3:
            continue
        try:
            date = dt.date.fromisoformat(parts[depth + 1])
        except ValueError:
            continue
        found[(parts[depth], date)].append(key)
    return found


def prune(
    store: ObjectStore,
    private: ObjectStore | None,
    *,
    keep_days: int,
    today: dt.date,
    networks: tuple[str, ...] = (),
    dry_run: bool = False,
) -> PruneReport:
    """Remove what belongs to labelled dates older than ``today - keep_days``."""
    if keep_days < 1:
        msg = f"keep_days must be at least 1, not {keep_days}"
        raise ValueError(msg)
    cutoff = today - dt.timedelta(days=keep_days)
    snapshots, labels = (_dated_keys(store, area) for area in _AREAS)
    traps = _dated_keys(private, "validator-private/traps") if private is not None else {}
    removed: list[tuple[str, dt.date]] = []
    kept: list[tuple[str, dt.date]] = []
    objects = 0
    for network, date in sorted(set(snapshots) | set(labels)):
        if date >= cutoff or (networks and network not in networks):
            continue
        labelled = any(k.endswith(contract.MANIFEST) for k in labels.get((network, date), []))
        if not labelled:
            kept.append((network, date))
            continue
        doomed = [(store, k) for k in snapshots.get((network, date), []) + labels.get((network, date), [])]
        if private is not None:
            doomed += [(private, k) for k in traps.get((network, date), [])]
        for where, key in doomed:
            if not dry_run:
                where.delete(key)
            objects += 1
        removed.append((network, date))
    return PruneReport(removed, kept, objects)


def _run_prune(args: argparse.Namespace) -> int:
    settings = SotSettings()
    store = open_stack_store(settings.stack)
    private = open_stack_store(settings.stack, private=True)  # the object store itself when none is set
    today = dt.datetime.now(dt.UTC).date()
    networks = (args.network,) if args.network else ()
    report = prune(store, private, keep_days=args.keep_days, today=today, networks=networks, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    say(f"{verb} {len(report.removed_dates)} dates ({report.removed_objects} objects) older than {args.keep_days} days")
    for network, date in report.kept_unlabelled:
        say(f"kept {network} {date}: beyond the window, but its labels are still due")
    return 0


def register_prune(commands: Any) -> None:
    """``riskstream sot prune --keep-days N``: the subcommand, added to ``riskstream sot``."""
    parser = commands.add_parser("prune", help="remove batches, labels and traps of labelled dates beyond a window")
    parser.add_argument("--keep-days", type=int, required=True, help="dates newer than today - N are kept")
    parser.add_argument("--network", default=None, help="only this network (default: every network)")
    parser.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    parser.set_defaults(run=_run_prune)
