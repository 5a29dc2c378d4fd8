"""Tier 3: how well scores predicted the labels published at T + tau (0-0.5).

metrics = ground_truth_metrics(scores, labels, k=100)
score = ground_truth_score(metrics)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
MAX_SCORE = 0.5


def _average_ranks(values: Floats) -> Floats:
    """1-based ranks, ties get their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return ranks


def auc_roc(scores: Floats, labels: Floats) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); 0.5 when one class is missing."""
    positives = labels > 0.5
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return 0.5
    ranks = _average_ranks(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auc_pr(scores: Floats, labels: Floats) -> float:
    """Average precision over distinct score thresholds (ties enter together); 0 without positives."""
    positives = labels > 0.5
    n_pos = int(positives.sum())
    if n_pos == 0:
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], positives[order].astype(np.float64)
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_tie]
    predicted = (np.flatnonzero(last_of_tie) + 1).astype(np.float64)
    precision = tp / predicted
    recall = tp / n_pos
    gained = np.diff(np.r_[0.0, recall])
    return float((gained * precision).sum())


def precision_at_k(scores: Floats, labels: Floats, k: int) -> float:
    if len(scores) == 0:
        return 0.0
    k = min(k, len(scores))
    top = np.argsort(-scores, kind="mergesort")[:k]
    return float((labels[top] > 0.5).mean())


def brier(scores: Floats, labels: Floats) -> float:
    return float(np.mean((np.clip(scores, 0.0, 1.0) - labels) ** 2)) if len(scores) else 1.0


def calibration_error(scores: Floats, labels: Floats, bins: int = 10) -> float:
    """Expected calibration error over equal-width bins."""
    if len(scores) == 0:
        return 1.0
    clipped = np.clip(scores, 0.0, 1.0)
    which = np.minimum((clipped * bins).astype(np.int64), bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(float(clipped[inside].mean()) - float(labels[inside].mean()))
    return float(error)


CALIBRATION_BINS = 10
RECALL_LEVELS = tuple(round(0.05 * i, 2) for i in range(1, 21))
RELIABILITY_PREFIX, PR_PREFIX = "reliability_", "pr_precision_at_recall_"


def reliability_bins(scores: Floats, labels: Floats, bins: int = CALIBRATION_BINS) -> dict[str, float]:
    """The reliability diagram behind ``calibration_error``: per equal-width bin, its alert count and,
    where it holds any, the mean score and the share of positives (``reliability_<bin>_<what>``)."""
    clipped = np.clip(scores, 0.0, 1.0)
    which = np.minimum((clipped * bins).astype(np.int64), bins - 1)
    out: dict[str, float] = {}
    for b in range(bins):
        inside = which == b
        out[f"{RELIABILITY_PREFIX}{b}_count"] = float(inside.sum())
        if inside.any():
            out[f"{RELIABILITY_PREFIX}{b}_mean_score"] = float(clipped[inside].mean())
            out[f"{RELIABILITY_PREFIX}{b}_positive_rate"] = float(labels[inside].mean())
    return out


def interpolated_precision(scores: Floats, labels: Floats) -> dict[str, float]:
    """The precision-recall curve at fixed recall levels: the highest precision of any score threshold
    (ties enter together, as in ``auc_pr``) whose recall reaches the level; nothing without positives."""
    positives = labels > 0.5
    n_pos = int(positives.sum())
    if n_pos == 0:
        return {}
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], positives[order].astype(np.float64)
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_tie]
    precision = tp / (np.flatnonzero(last_of_tie) + 1).astype(np.float64)
    recall = tp / n_pos
    best_from = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at this threshold or a lower one
    where = np.searchsorted(recall, np.asarray(RECALL_LEVELS) - 1e-12)  # first threshold reaching the level
    return {f"{PR_PREFIX}{level:.2f}": float(best_from[i]) for level, i in zip(RECALL_LEVELS, where, strict=True)}


def ground_truth_metrics(scores: Floats, labels: Floats, *, k: int) -> dict[str, float]:
    """The tier-3 figures of one score vector against 0/1 labels (aligned arrays), with the points of
    its reliability diagram and precision-recall curve (for the dashboard; they score nothing)."""
    return {
        "auc_roc": auc_roc(scores, labels),
        "auc_pr": auc_pr(scores, labels),
        "precision_at_k": precision_at_k(scores, labels, k),
        "brier": brier(scores, labels),
        "calibration_error": calibration_error(scores, labels),
        "labelled": float(len(labels)),
        "positives": float((labels > 0.5).sum()),
        **(reliability_bins(scores, labels) if len(scores) else {}),
        **interpolated_precision(scores, labels),
    }


def ground_truth_score(metrics: dict[str, float]) -> float:
    """0-0.5: AUC-ROC above chance, AUC-PR, precision@K, Brier and calibration, weighted."""
    parts = (
        0.25 * max(0.0, (metrics["auc_roc"] - 0.5) * 2.0)
        + 0.35 * metrics["auc_pr"]
        + 0.15 * metrics["precision_at_k"]
        + 0.15 * (1.0 - min(1.0, metrics["brier"]))
        + 0.10 * (1.0 - min(1.0, metrics["calibration_error"]))
    )
    return float(MAX_SCORE * min(1.0, max(0.0, parts)))
