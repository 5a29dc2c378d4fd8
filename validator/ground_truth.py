"""Tier 3: how well scores predicted the labels published at T + tau (0-0.5).

The figures are ``streams.label_metrics`` (scikit-learn); this module says what an undefined one is
worth (AUC-ROC 0.5, AUC-PR and precision@K 0, Brier and calibration error 1) and weighs them.

metrics = ground_truth_metrics(scores, labels, k=100)
score = ground_truth_score(metrics)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from streams import label_metrics

Floats = npt.NDArray[np.float64]
MAX_SCORE = 0.5


def _defined(value: float, otherwise: float) -> float:
    """The tier-3 convention for a figure the labels leave undefined (NaN): what it is worth here."""
    return otherwise if np.isnan(value) else value


def auc_roc(scores: Floats, labels: Floats) -> float:
    """Area under the ROC curve (ties count half); 0.5 when one class is missing."""
    return _defined(label_metrics.auc_roc(scores, labels), 0.5)


def auc_pr(scores: Floats, labels: Floats) -> float:
    """Average precision over distinct score thresholds (ties enter together); 0 without positives."""
    return _defined(label_metrics.auc_pr(scores, labels), 0.0)


def precision_at_k(scores: Floats, labels: Floats, k: int) -> float:
    return _defined(label_metrics.precision_at_k(scores, labels, k), 0.0)


def brier(scores: Floats, labels: Floats) -> float:
    return _defined(label_metrics.brier(scores, labels), 1.0)


def calibration_error(scores: Floats, labels: Floats, bins: int = 10) -> float:
    """Expected calibration error over equal-width bins."""
    return _defined(label_metrics.calibration_error(scores, labels, bins), 1.0)


CALIBRATION_BINS = 10
RECALL_LEVELS = tuple(round(0.05 * i, 2) for i in range(1, 21))
RELIABILITY_PREFIX, PR_PREFIX = "reliability_", "pr_precision_at_recall_"


def reliability_bins(scores: Floats, labels: Floats, bins: int = CALIBRATION_BINS) -> dict[str, float]:
    """The reliability diagram behind ``calibration_error``: per equal-width bin, its alert count and,
    where it holds any, the mean score and the share of positives (``reliability_<bin>_<what>``)."""
    diagram = label_metrics.reliability(scores, labels, bins)
    out: dict[str, float] = {}
    for b in range(bins):
        out[f"{RELIABILITY_PREFIX}{b}_count"] = float(diagram.counts[b])
        if diagram.counts[b]:
            out[f"{RELIABILITY_PREFIX}{b}_mean_score"] = float(diagram.mean_score[b])
            out[f"{RELIABILITY_PREFIX}{b}_positive_rate"] = float(diagram.positive_rate[b])
    return out


def interpolated_precision(scores: Floats, labels: Floats) -> dict[str, float]:
    """The precision-recall curve at fixed recall levels: the highest precision of any score threshold
    (ties enter together, as in ``auc_pr``) whose recall reaches the level; nothing without positives."""
    best = label_metrics.precision_at_recall(scores, labels, RECALL_LEVELS)
    if best is None:
        return {}
    return {f"{PR_PREFIX}{level:.2f}": float(value) for level, value in zip(RECALL_LEVELS, best, strict=True)}


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
