"""The reliability diagram and precision-recall points stored with tier 3 are the ones that scored it."""

from __future__ import annotations

import numpy as np
import pytest

from validator.ground_truth import (
    RECALL_LEVELS,
    calibration_error,
    ground_truth_metrics,
    ground_truth_score,
    interpolated_precision,
    reliability_bins,
)


def test_a_hand_computed_example() -> None:
    scores = np.array([0.95, 0.85, 0.85, 0.35, 0.05])  # off the bin edges (an edge score joins the lower bin)
    labels = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    bins = reliability_bins(scores, labels)
    assert bins["reliability_9_count"] == 1 and bins["reliability_9_positive_rate"] == 1.0
    assert bins["reliability_8_count"] == 2 and bins["reliability_8_mean_score"] == pytest.approx(0.85)
    assert bins["reliability_8_positive_rate"] == 0.5
    assert bins["reliability_0_mean_score"] == pytest.approx(0.05) and bins["reliability_5_count"] == 0
    assert "reliability_5_mean_score" not in bins  # an empty bin has no point
    # thresholds (ties together): >=0.95 -> P 1, R 1/3; >=0.85 -> P 2/3, R 2/3; >=0.35 -> P 1/2; >=0.05 -> P 3/5, R 1
    curve = interpolated_precision(scores, labels)
    assert len(curve) == len(RECALL_LEVELS)
    assert curve["pr_precision_at_recall_0.30"] == 1.0
    assert curve["pr_precision_at_recall_0.35"] == pytest.approx(2 / 3)
    assert curve["pr_precision_at_recall_0.65"] == pytest.approx(2 / 3)
    assert curve["pr_precision_at_recall_0.70"] == pytest.approx(3 / 5)
    assert curve["pr_precision_at_recall_1.00"] == pytest.approx(3 / 5)


def test_agrees_with_scikit_learn_and_the_calibration_error() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    for _ in range(50):
        n = int(rng.integers(2, 400))
        scores = np.round(rng.random(n), int(rng.integers(1, 4)))  # coarse scores: many ties
        labels = (rng.random(n) < scores * 0.6).astype(np.float64)
        if labels.sum() == 0:
            assert interpolated_precision(scores, labels) == {}
            continue
        precision, recall, _ = metrics.precision_recall_curve(labels, scores)
        for key, value in interpolated_precision(scores, labels).items():
            level = float(key.rsplit("_", 1)[1])
            assert value == pytest.approx(precision[recall >= level - 1e-12].max(), abs=1e-12)
        bins = reliability_bins(scores, labels)
        ece = sum(
            bins[f"reliability_{b}_count"]
            / n
            * abs(bins[f"reliability_{b}_mean_score"] - bins[f"reliability_{b}_positive_rate"])
            for b in range(10)
            if bins[f"reliability_{b}_count"]
        )
        assert ece == pytest.approx(calibration_error(scores, labels), abs=1e-12)


def test_the_points_change_no_score() -> None:
    scores = np.array([0.2, 0.7, 0.4])
    labels = np.array([0.0, 1.0, 0.0])
    metrics = ground_truth_metrics(scores, labels, k=2)
    named = {k: v for k, v in metrics.items() if not k.startswith(("reliability_", "pr_precision_at_recall_"))}
    assert set(named) == {"auc_roc", "auc_pr", "precision_at_k", "brier", "calibration_error", "labelled", "positives"}
    assert ground_truth_score(metrics) == ground_truth_score(named)
    assert ground_truth_metrics(np.array([]), np.array([]), k=2)["labelled"] == 0.0  # nothing labelled: no points
