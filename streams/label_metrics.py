"""How well scores predict 0/1 labels: AUC-ROC, AUC-PR, precision@K, Brier score, calibration error.

The one implementation behind the validator's tier 3, the miner's training reports and ``miner
check``, on scikit-learn (``roc_auc_score``, ``average_precision_score``, ``brier_score_loss``,
``precision_recall_curve``); the reliability diagram and calibration error bin by hand (see
``Reliability`` for why not ``calibration_curve``). Arguments are aligned arrays, scores first; a
label is positive when it is above 0.5. A figure that the labels leave undefined (one class only,
nothing labelled) is NaN and the caller says what it is worth. A NaN score or label is an error upstream (scores are
checked to be in [0, 1] when they arrive) and raises ``ValueError``: it never becomes a figure.

    auc_roc(scores, labels), auc_pr(scores, labels), precision_at_k(scores, labels, 100)
    brier(scores, labels), calibration_error(scores, labels, bins=10)
    reliability(scores, labels, bins=10).counts, precision_at_recall(scores, labels, (0.5, 0.9))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, brier_score_loss, precision_recall_curve, roc_auc_score

NAN = float("nan")
Floats = npt.NDArray[np.float64]


def _arrays(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int8]]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    raw = np.asarray(labels, dtype=np.float64).ravel()
    if s.shape != raw.shape:
        msg = f"{s.size} scores for {raw.size} labels"
        raise ValueError(msg)
    if np.isnan(s).any() or np.isnan(raw).any():
        msg = "NaN among the scores or labels: no metric of them is meaningful"
        raise ValueError(msg)
    return s, (raw > 0.5).astype(np.int8)


def auc_roc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Area under the ROC curve (tied scores count half); NaN when one class is absent."""
    s, y = _arrays(scores, labels)
    if y.size == 0 or y.min() == y.max():
        return NAN
    return float(roc_auc_score(y, s))


def auc_pr(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Average precision over distinct score thresholds (tied scores enter together); NaN without positives."""
    s, y = _arrays(scores, labels)
    if not y.any():
        return NAN
    return float(average_precision_score(y, s))


def precision_at_k(scores: npt.ArrayLike, labels: npt.ArrayLike, k: int) -> float:
    """Share of positives among the ``k`` highest scores (ties: the earlier position first); NaN when empty."""
    s, y = _arrays(scores, labels)
    if s.size == 0 or k < 1:
        return NAN
    top = np.argsort(-s, kind="mergesort")[: min(k, s.size)]
    return float(y[top].mean())


def brier(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Mean squared error of the scores (clipped to [0, 1]) as probabilities; NaN when empty."""
    s, y = _arrays(scores, labels)
    if s.size == 0:
        return NAN
    return float(brier_score_loss(y, np.clip(s, 0.0, 1.0), pos_label=1))


@dataclass(frozen=True, slots=True)
class Reliability:
    """A reliability diagram over equal-width bins: per bin, its size, mean score and share of positives.

    Bins are closed on the left (a score of 0.3 is in [0.3, 0.4); 1.0 is in the last bin), as the
    services have always drawn them; an empty bin has NaN mean score and positive rate.
    ``calibration_curve(strategy="uniform")`` closes its bins on the right instead, so it is not used:
    it would move a score on an inner edge (a constant 0.5, say) and change published figures. Off
    the edges the two agree exactly (a test checks it).
    """

    counts: npt.NDArray[np.int64]
    mean_score: Floats
    positive_rate: Floats


def reliability(scores: npt.ArrayLike, labels: npt.ArrayLike, bins: int = 10) -> Reliability:
    """The reliability diagram of the scores (clipped to [0, 1]) against the labels."""
    s, y = _arrays(scores, labels)
    clipped = np.clip(s, 0.0, 1.0)
    which = np.minimum((clipped * bins).astype(np.int64), bins - 1)
    counts = np.bincount(which, minlength=bins).astype(np.int64)
    sums = np.bincount(which, weights=clipped, minlength=bins)
    positives = np.bincount(which, weights=y.astype(np.float64), minlength=bins)
    filled = counts > 0
    mean_score, positive_rate = np.full(bins, np.nan), np.full(bins, np.nan)
    mean_score[filled] = sums[filled] / counts[filled]
    positive_rate[filled] = positives[filled] / counts[filled]
    return Reliability(counts, mean_score, positive_rate)


def calibration_error(scores: npt.ArrayLike, labels: npt.ArrayLike, bins: int = 10) -> float:
    """Expected calibration error: each ``reliability`` bin's |mean score - positive rate|, by size; NaN if empty."""
    diagram = reliability(scores, labels, bins)
    total = int(diagram.counts.sum())
    if total == 0:
        return NAN
    filled = diagram.counts > 0
    gaps = np.abs(diagram.mean_score[filled] - diagram.positive_rate[filled])
    return float(np.sum(diagram.counts[filled] / total * gaps))


def precision_at_recall(scores: npt.ArrayLike, labels: npt.ArrayLike, levels: Sequence[float]) -> Floats | None:
    """Interpolated precision-recall curve: per recall level, the best precision of any score threshold
    (tied scores enter together) whose recall reaches it (``precision_recall_curve``); None without positives."""
    s, y = _arrays(scores, labels)
    if not y.any():
        return None
    precision, recall, _ = precision_recall_curve(y, s)
    wanted = np.asarray(levels, dtype=np.float64)[:, None]
    reaching = recall[None, :] >= wanted - 1e-12
    best: Floats = np.where(reaching, precision[None, :], 0.0).max(axis=1)
    return best
