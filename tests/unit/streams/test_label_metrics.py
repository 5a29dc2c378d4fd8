"""streams.label_metrics (scikit-learn) gives the figures the hand-written implementations gave, and says
clearly what it does with one class, nothing labelled and NaN; the validator, the miner and ``miner check``
all read it."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.calibration import calibration_curve

from miner import diagnostics
from miner import metrics as miner_metrics
from streams import label_metrics
from validator import ground_truth

Floats = npt.NDArray[np.float64]
TOLERANCE = 1e-9
RECALL_LEVELS = ground_truth.RECALL_LEVELS


# --- the implementations the services had before (numpy, by hand): the oracle -----------------------------


def _average_ranks(values: Floats) -> Floats:
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return ranks


def old_auc_roc(scores: Floats, labels: Floats) -> float:
    positives = labels > 0.5
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    ranks = _average_ranks(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _curve(scores: Floats, labels: Floats) -> tuple[Floats, Floats]:
    positives = labels > 0.5
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], positives[order].astype(np.float64)
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_tie]
    precision = tp / (np.flatnonzero(last_of_tie) + 1).astype(np.float64)
    return precision, tp / int(positives.sum())


def old_auc_pr(scores: Floats, labels: Floats) -> float:
    precision, recall = _curve(scores, labels)
    return float((np.diff(np.r_[0.0, recall]) * precision).sum())


def old_interpolated(scores: Floats, labels: Floats) -> Floats:
    precision, recall = _curve(scores, labels)
    best_from = np.maximum.accumulate(precision[::-1])[::-1]
    return best_from[np.searchsorted(recall, np.asarray(RECALL_LEVELS) - 1e-12)]


def old_precision_at_k(scores: Floats, labels: Floats, k: int) -> float:
    top = np.argsort(-scores, kind="mergesort")[: min(k, len(scores))]
    return float((labels[top] > 0.5).mean())


def old_brier(scores: Floats, labels: Floats) -> float:
    return float(np.mean((np.clip(scores, 0.0, 1.0) - labels) ** 2))


def old_calibration(scores: Floats, labels: Floats, bins: int = 10) -> float:
    clipped = np.clip(scores, 0.0, 1.0)
    which = np.minimum((clipped * bins).astype(np.int64), bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(float(clipped[inside].mean()) - float(labels[inside].mean()))
    return float(error)


# --- data -------------------------------------------------------------------------------------------------


def _sample(seed: int, n: int, *, ties: bool) -> tuple[Floats, Floats]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < rng.uniform(0.02, 0.5)).astype(np.float64)
    scores = np.clip(0.35 * labels + rng.normal(0.3, 0.2, n), 0.0, 1.0)
    if ties:  # coarse scores: many ties, some on the bins' edges
        scores = np.round(scores, 2)
    return scores, labels


CASES = [(seed, n, ties) for seed in range(6) for n in (7, 60, 2_000) for ties in (False, True)]


@pytest.mark.parametrize(("seed", "n", "ties"), CASES)
def test_rankings_and_brier_equal_the_hand_written_figures(seed: int, n: int, ties: bool) -> None:
    scores, labels = _sample(seed, n, ties=ties)
    if labels.min() == labels.max():
        labels[0] = 1.0 - labels[0]
    assert label_metrics.auc_roc(scores, labels) == pytest.approx(old_auc_roc(scores, labels), abs=TOLERANCE)
    assert label_metrics.auc_pr(scores, labels) == pytest.approx(old_auc_pr(scores, labels), abs=TOLERANCE)
    assert label_metrics.brier(scores, labels) == pytest.approx(old_brier(scores, labels), abs=TOLERANCE)
    for k in (1, 5, 100, 10_000):
        expected = old_precision_at_k(scores, labels, k)
        assert label_metrics.precision_at_k(scores, labels, k) == pytest.approx(expected, abs=TOLERANCE)
    found = label_metrics.precision_at_recall(scores, labels, RECALL_LEVELS)
    assert found is not None
    np.testing.assert_allclose(found, old_interpolated(scores, labels), atol=TOLERANCE, rtol=0)
    # the services' wrappers read the same figures (the miner's take labels first)
    assert miner_metrics.auc_roc(labels, scores) == label_metrics.auc_roc(scores, labels)
    assert miner_metrics.auc_pr(labels, scores) == label_metrics.auc_pr(scores, labels)
    assert ground_truth.auc_pr(scores, labels) == label_metrics.auc_pr(scores, labels)


@pytest.mark.parametrize(("seed", "n", "ties"), CASES)
def test_calibration_equals_the_hand_written_figure(seed: int, n: int, ties: bool) -> None:
    scores, labels = _sample(seed, n, ties=ties)  # coarse scores: some on the bins' edges
    if labels.min() == labels.max():
        labels[0] = 1.0 - labels[0]
    expected = old_calibration(scores, labels)
    assert label_metrics.calibration_error(scores, labels) == pytest.approx(expected, abs=TOLERANCE)
    assert ground_truth.calibration_error(scores, labels) == pytest.approx(expected, abs=TOLERANCE)
    check = diagnostics.ground_truth_metrics(scores, labels.astype(np.int8), k=100)
    assert check["calibration_error"] == pytest.approx(expected, abs=TOLERANCE)
    assert check["auc_roc"] == pytest.approx(old_auc_roc(scores, labels), abs=TOLERANCE)
    assert check["brier"] == pytest.approx(old_brier(scores, labels), abs=TOLERANCE)


@pytest.mark.parametrize(("seed", "n"), [(seed, n) for seed in range(6) for n in (7, 60, 2_000)])
def test_the_reliability_diagram_equals_calibration_curve_off_the_bin_edges(seed: int, n: int) -> None:
    scores, labels = _sample(seed, n, ties=False)  # continuous: no score on an edge
    diagram = label_metrics.reliability(scores, labels)
    true_rate, mean_score = calibration_curve(labels.astype(np.int8), scores, n_bins=10, strategy="uniform")
    filled = diagram.counts > 0
    np.testing.assert_allclose(diagram.positive_rate[filled], true_rate, atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(diagram.mean_score[filled], mean_score, atol=TOLERANCE, rtol=0)


def test_a_score_on_an_inner_edge_falls_in_the_upper_bin() -> None:
    scores, labels = [0.1, 0.15, 0.5, 1.0, 0.0], [1, 0, 0, 1, 0]
    diagram = label_metrics.reliability(scores, labels, bins=10)
    assert diagram.counts.tolist() == [1, 2, 0, 0, 0, 1, 0, 0, 0, 1]  # bins closed on the left; 1.0 in the last
    assert diagram.mean_score[1] == pytest.approx(0.125) and diagram.positive_rate[1] == pytest.approx(0.5)
    assert math.isnan(diagram.mean_score[2]) and math.isnan(diagram.positive_rate[2])  # empty bin
    gaps = 1 * 0.0 + 2 * 0.375 + 1 * 0.5 + 1 * 0.0
    assert label_metrics.calibration_error(scores, labels) == pytest.approx(gaps / 5)


def test_one_class_only_leaves_the_rankings_undefined() -> None:
    scores = np.array([0.2, 0.9, 0.4])
    for labels in (np.zeros(3), np.ones(3)):
        assert math.isnan(label_metrics.auc_roc(scores, labels))
        assert not math.isnan(label_metrics.brier(scores, labels))
        assert not math.isnan(label_metrics.calibration_error(scores, labels))
    assert math.isnan(label_metrics.auc_pr(scores, np.zeros(3)))  # no positives: no precision
    assert label_metrics.precision_at_recall(scores, np.zeros(3), RECALL_LEVELS) is None
    assert label_metrics.auc_pr(scores, np.ones(3)) == 1.0  # every alert positive: every threshold is exact
    # the validator's tier 3 says what an undefined figure is worth
    assert ground_truth.auc_roc(scores, np.zeros(3)) == 0.5
    assert ground_truth.auc_pr(scores, np.zeros(3)) == 0.0
    assert ground_truth.interpolated_precision(scores, np.zeros(3)) == {}


def test_nothing_labelled_is_undefined_and_tier_3_scores_it_as_worthless() -> None:
    empty = np.array([], dtype=np.float64)
    for figure in (label_metrics.auc_roc, label_metrics.auc_pr, label_metrics.brier, label_metrics.calibration_error):
        assert math.isnan(figure(empty, empty))
    assert math.isnan(label_metrics.precision_at_k(empty, empty, 10))
    assert label_metrics.reliability(empty, empty).counts.tolist() == [0] * 10
    metrics = ground_truth.ground_truth_metrics(empty, empty, k=10)
    assert (metrics["auc_roc"], metrics["auc_pr"], metrics["precision_at_k"]) == (0.5, 0.0, 0.0)
    assert (metrics["brier"], metrics["calibration_error"]) == (1.0, 1.0)
    assert ground_truth.ground_truth_score(metrics) == 0.0
    check = diagnostics.ground_truth_metrics(empty, empty.astype(np.int8))
    assert all(math.isnan(check[m]) for m in ("auc_roc", "auc_pr", "precision_at_k", "brier", "calibration_error"))


@pytest.mark.parametrize("where", ["scores", "labels"])
def test_nan_is_refused_not_turned_into_a_figure(where: str) -> None:
    scores, labels = np.array([0.1, 0.8, 0.4]), np.array([0.0, 1.0, 0.0])
    if where == "scores":
        scores[1] = np.nan
    else:
        labels[1] = np.nan
    for figure in (label_metrics.auc_roc, label_metrics.auc_pr, label_metrics.brier, label_metrics.calibration_error):
        with pytest.raises(ValueError, match="NaN"):
            figure(scores, labels)
    with pytest.raises(ValueError, match="NaN"):
        ground_truth.ground_truth_metrics(scores, labels, k=2)


def test_misaligned_arrays_are_refused() -> None:
    with pytest.raises(ValueError, match="2 scores for 3 labels"):
        label_metrics.auc_roc([0.1, 0.2], [0, 1, 0])
