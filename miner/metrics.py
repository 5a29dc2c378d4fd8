"""Ranking metrics the miner reports for its models (AUC-ROC, AUC-PR), in numpy."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def auc_roc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); NaN when one class is absent."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(s, kind="stable")
    ranks = np.empty(s.size, dtype=np.float64)
    sorted_scores = s[order]
    # average rank over ties
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], s.size]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def auc_pr(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Average precision over distinct score thresholds (equal scores form one step); NaN without positives.

    The same definition as scikit-learn's ``average_precision_score``.
    """
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    ordered = s[order]
    last_of_tie = np.r_[ordered[1:] != ordered[:-1], True]  # where a run of equal scores ends
    hits = np.cumsum(y[order])[last_of_tie]
    seen = np.arange(1, y.size + 1)[last_of_tie]
    recall = hits / positives
    precision = hits / seen
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
