"""Ranking metrics the miner reports for its models, labels first (AUC-ROC, AUC-PR); NaN when undefined.

The figures are ``streams.label_metrics`` (scikit-learn), the ones the validator's tier 3 computes. It is
imported when a figure is asked for: a miner that only scores never loads scikit-learn (see miner/__init__.py).
"""

from __future__ import annotations

import numpy.typing as npt


def auc_roc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve (tied scores count half); NaN when one class is absent."""
    from streams import label_metrics

    return label_metrics.auc_roc(scores, labels)


def auc_pr(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Average precision over distinct score thresholds (equal scores form one step); NaN without positives."""
    from streams import label_metrics

    return label_metrics.auc_pr(scores, labels)
