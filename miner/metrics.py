"""Ranking metrics the miner reports for its models, labels first (AUC-ROC, AUC-PR); NaN when undefined.

The figures are ``streams.label_metrics`` (scikit-learn), the ones the validator's tier 3 computes.
"""

from __future__ import annotations

import numpy.typing as npt

from streams import label_metrics


def auc_roc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve (tied scores count half); NaN when one class is absent."""
    return label_metrics.auc_roc(scores, labels)


def auc_pr(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Average precision over distinct score thresholds (equal scores form one step); NaN without positives."""
    return label_metrics.auc_pr(scores, labels)
