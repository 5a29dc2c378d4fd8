"""Fit a scorer the way every retraining does: hold out the newest dates, compare, refit on all.

The candidate is fitted on the older dates and scored on the held-out newest ones next to the
current model; a candidate whose held-out AUC-PR is worse than the current model's by more than
``max_auc_pr_drop`` is not promoted. A promoted candidate is refitted on every date (the newest
labels included) before it is saved.

    outcome = train_validated(scorer, days, current=agent.scorer, max_auc_pr_drop=0.02)
    if outcome.promoted: outcome.scorer.save(models_path)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from miner.errors import TrainingError
from miner.features import index_of
from miner.metrics import auc_pr, auc_roc
from miner.scorer import LabelledDay, Scorer, TrainingDay
from streams.progress import say


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A model's ranking quality over the held-out dates (alerts pooled)."""

    version: str
    auc_pr: float
    auc_roc: float
    rows: int
    positives: int

    def as_dict(self) -> dict[str, object]:
        def clean(v: float) -> float | None:
            return None if math.isnan(v) else round(v, 6)

        return {
            "version": self.version,
            "auc_pr": clean(self.auc_pr),
            "auc_roc": clean(self.auc_roc),
            "rows": self.rows,
            "positives": self.positives,
        }


@dataclass(frozen=True, slots=True)
class TrainingOutcome:
    promoted: bool
    reason: str
    scorer: Scorer | None  # fitted on every date when promoted
    candidate: Evaluation
    current: Evaluation | None
    train_dates: list[str]
    validation_dates: list[str]


def split_days(days: Sequence[TrainingDay]) -> tuple[list[TrainingDay], list[TrainingDay]]:
    """(older dates to fit on, newest fifth held out, at least one)."""
    if len(days) < 2:
        msg = f"training needs at least 2 labelled past dates (1 held out for validation), found {len(days)}"
        raise TrainingError(msg)
    ordered = sorted(days, key=lambda d: d.date)
    held_out = max(1, round(len(ordered) / 5))
    return ordered[:-held_out], ordered[-held_out:]


def _labelled_scores(scorer: Scorer, day: LabelledDay) -> tuple[np.ndarray, np.ndarray]:
    scores = scorer.score(day.batch)
    where = index_of(pa.array(scores.alert_ids, pa.string()), day.labels.alerts["alert_id"])
    keep = where >= 0
    labels = np.asarray(day.labels.alerts["label"].to_numpy(zero_copy_only=False), dtype=np.int8)[where[keep]]
    return labels, np.asarray(scores.alert_scores, dtype=np.float64)[keep]


def evaluate(scorers: Sequence[Scorer], days: Sequence[TrainingDay]) -> list[Evaluation]:
    """Each scorer's AUC-PR / AUC-ROC over ``days`` (each day loaded once for all scorers)."""
    pooled: list[tuple[list[np.ndarray], list[np.ndarray]]] = [([], []) for _ in scorers]
    for training_day in days:
        day = training_day.load()
        for (labels, values), scorer in zip(pooled, scorers, strict=True):
            y, s = _labelled_scores(scorer, day)
            labels.append(y)
            values.append(s)
    found = []
    for (labels, values), scorer in zip(pooled, scorers, strict=True):
        y = np.concatenate(labels) if labels else np.empty(0, np.int8)
        s = np.concatenate(values) if values else np.empty(0)
        found.append(Evaluation(scorer.version, auc_pr(y, s), auc_roc(y, s), int(y.size), int(y.sum())))
    return found


def train_validated(
    base: Scorer, days: Sequence[TrainingDay], *, current: Scorer | None, max_auc_pr_drop: float
) -> TrainingOutcome:
    """Fit on the older dates, compare with ``current`` on the newest, refit on all if promoted."""
    train, held_out = split_days(days)
    candidate = base.fit(train)
    rivals = [candidate] + ([current] if current is not None and current.version else [])
    evaluations = evaluate(rivals, held_out)
    ours, theirs = evaluations[0], (evaluations[1] if len(evaluations) > 1 else None)
    say(f"candidate: held-out AUC-PR {ours.auc_pr:.4f}, AUC-ROC {ours.auc_roc:.4f} on {ours.rows} alerts")
    dates = ([d.date.isoformat() for d in train], [d.date.isoformat() for d in held_out])
    if math.isnan(ours.auc_pr):
        return TrainingOutcome(False, "held-out dates have no positive alert", None, ours, theirs, *dates)
    if theirs is not None:
        say(f"current {theirs.version}: held-out AUC-PR {theirs.auc_pr:.4f}")
        if not math.isnan(theirs.auc_pr) and ours.auc_pr < theirs.auc_pr - max_auc_pr_drop:
            reason = (
                f"candidate held-out AUC-PR {ours.auc_pr:.4f} is worse than the current model's "
                f"{theirs.auc_pr:.4f} by more than {max_auc_pr_drop}"
            )
            return TrainingOutcome(False, reason, None, ours, theirs, *dates)
    final = base.fit(sorted(days, key=lambda d: d.date))
    return TrainingOutcome(True, "promoted", final, ours, theirs, *dates)
