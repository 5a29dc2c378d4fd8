"""Pure maths: ensemble weights and scores (property-based), ground truth, integrity, behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from validator.behaviour import (
    PreviousEnsemble,
    Thresholds,
    assess_behaviour,
    copies_of_ensemble,
    find_copies,
    gaming_reason,
)
from validator.ensemble import combine_weights, ensemble_scores, moving_average, rank_by_score
from validator.ground_truth import auc_pr, auc_roc, brier, precision_at_k
from validator.integrity import SubmissionFacts, assess_integrity

unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def panels(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    m = draw(st.integers(1, 6))
    n = draw(st.integers(1, 30))
    scores = draw(arrays(np.float64, (m, n), elements=unit))
    missing = draw(arrays(np.bool_, (m, n)))
    matrix = np.where(missing, np.nan, scores)
    priors = draw(arrays(np.float64, m, elements=st.floats(0.01, 1.0)))
    immediate = draw(arrays(np.float64, m, elements=st.floats(0.0, 0.5)))
    eligible = draw(arrays(np.bool_, m))
    return matrix, priors, immediate, eligible


@settings(max_examples=150, deadline=None)
@given(panels())
def test_weights_sum_to_one_and_scores_stay_in_unit_range(panel: tuple[np.ndarray, ...]) -> None:
    matrix, priors, immediate, eligible = panel
    w = combine_weights(priors, immediate, eligible, min_weight=0.01, temperature=0.03)
    assert np.all(w >= 0) and np.all(w[~eligible] == 0)
    if (immediate * eligible).sum() > 0:
        assert w.sum() == pytest.approx(1.0)
        assert np.all((w == 0) | (w >= 0.01 - 1e-12)) or (w < 0.01).all()
    else:
        assert w.sum() == 0
    out = ensemble_scores(matrix, w, [f"a{i:03d}" for i in range(matrix.shape[1])], top_k=3)
    assert np.all((out.score >= 0) & (out.score <= 1))
    assert np.all((out.confidence >= 0) & (out.confidence <= 1))
    assert np.all((out.agreement >= 0) & (out.agreement <= 1))
    assert sorted(out.rank.tolist()) == list(range(1, matrix.shape[1] + 1))
    assert all(len(c) <= 3 for c in out.contributors)


@settings(max_examples=100, deadline=None)
@given(panels(), st.randoms(use_true_random=False))
def test_miner_order_does_not_change_the_ensemble(panel: tuple[np.ndarray, ...], rnd: object) -> None:
    matrix, priors, immediate, eligible = panel
    perm = np.random.default_rng(0).permutation(matrix.shape[0])
    ids = [f"a{i:03d}" for i in range(matrix.shape[1])]
    w = combine_weights(priors, immediate, eligible, min_weight=0.01, temperature=0.03)
    wp = combine_weights(priors[perm], immediate[perm], eligible[perm], min_weight=0.01, temperature=0.03)
    a = ensemble_scores(matrix, w, ids, top_k=3)
    b = ensemble_scores(matrix[perm], wp, ids, top_k=3)
    np.testing.assert_allclose(a.score, b.score, atol=1e-12)
    np.testing.assert_allclose(a.std, b.std, atol=1e-9)
    np.testing.assert_array_equal(a.miner_count, b.miner_count)


def test_ensemble_of_known_values() -> None:
    matrix = np.array([[0.2, 0.9, np.nan], [0.4, 0.9, 0.5]])
    out = ensemble_scores(matrix, np.array([0.75, 0.25]), ["x", "b", "a"], top_k=1)
    np.testing.assert_allclose(out.score, [0.25, 0.9, 0.5])
    assert out.miner_count.tolist() == [2, 2, 1]
    assert out.rank.tolist() == [3, 1, 2]
    np.testing.assert_allclose(out.std[0], np.sqrt(0.75 * 0.05**2 + 0.25 * 0.15**2))
    assert out.agreement.tolist() == [0.5, 1.0, 1.0]  # 0.4 is 0.15 from the mean 0.25
    assert out.contributors[2] == [(1, 0.25, 0.5)]  # the only miner that scored it


def test_ties_rank_by_id_and_small_weights_drop() -> None:
    assert rank_by_score(np.array([0.5, 0.5, 0.9]), ["b", "a", "c"]).tolist() == [3, 2, 1]
    w = combine_weights(
        np.ones(3), np.array([1.0, 1.0, 0.005]), np.ones(3, dtype=bool), min_weight=0.01, temperature=0.03
    )
    assert w.tolist() == [0.5, 0.5, 0.0]
    assert moving_average([0.2, 0.6], 0.5, 0.9) == pytest.approx(0.4)
    assert moving_average([], 0.5, 0.9) == 0.9


def test_weights_are_a_softmax_of_the_priors_times_immediate() -> None:
    everyone = np.ones(3, dtype=bool)
    # a lead of one temperature in prior is a factor e, at any level of the priors
    for level in (0.0, 0.35):
        w = combine_weights(
            np.array([level + 0.03, level, level]), np.full(3, 0.5), everyone, min_weight=0.0, temperature=0.03
        )
        np.testing.assert_allclose(w, np.array([np.e, 1.0, 1.0]) / (np.e + 2.0))
    # immediate scales linearly; an ineligible miner's prior changes nothing, however high
    w = combine_weights(
        np.array([0.30, 0.30, 0.50]), np.array([0.5, 0.25, 0.5]), np.array([True, True, False]),
        min_weight=0.0, temperature=0.03,
    )  # fmt: skip
    np.testing.assert_allclose(w, [2 / 3, 1 / 3, 0.0])
    # a prior 0.2 behind (a miner without credit for a while) weighs e^-6.7 of the leader: dropped
    behind = np.array([0.35, 0.15])
    w = combine_weights(behind, np.full(2, 0.5), np.ones(2, dtype=bool), min_weight=0.01, temperature=0.03)
    assert w.tolist() == [1.0, 0.0]


def test_ground_truth_metrics_on_known_cases() -> None:
    y = np.array([1.0, 0.0, 1.0, 0.0])
    assert auc_roc(np.array([0.9, 0.1, 0.8, 0.2]), y) == 1.0
    assert auc_roc(np.array([0.1, 0.9, 0.2, 0.8]), y) == 0.0
    assert auc_roc(np.full(4, 0.5), y) == 0.5
    assert auc_pr(np.array([0.9, 0.1, 0.8, 0.2]), y) == 1.0
    assert auc_pr(np.array([0.9, 0.8, 0.1, 0.2]), y) == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 4)
    assert precision_at_k(np.array([0.9, 0.8, 0.1, 0.2]), y, 2) == 0.5
    assert brier(np.array([1.0, 0.0, 1.0, 0.0]), y) == 0.0


def test_integrity_fails_incomplete_or_out_of_range() -> None:
    good = SubmissionFacts(True, 100, 100, 0, 0, 0, 100, 10.0, checksum_ok=True, counts_ok=True)
    verdict = assess_integrity(good, min_completeness=0.95, max_latency_s=100)
    assert verdict.passed and verdict.score == pytest.approx(0.2 * (4 + 0.9) / 5)
    partial = SubmissionFacts(True, 100, 50, 0, 0, 0, 50, 10.0)
    assert not assess_integrity(partial, min_completeness=0.95, max_latency_s=100).passed
    # within the on-time window, seconds of jitter do not change the score (replays stay identical)
    quick, slower = (SubmissionFacts(True, 100, 100, 0, 0, 0, 100, t, checksum_ok=True) for t in (3.2, 41.7))
    on_time = [
        assess_integrity(f, min_completeness=0.95, max_latency_s=3600, on_time_s=300).score for f in (quick, slower)
    ]
    assert on_time[0] == on_time[1] == pytest.approx(0.2)
    late = SubmissionFacts(True, 100, 100, 0, 0, 0, 100, 1950.0, checksum_ok=True)
    assert assess_integrity(late, min_completeness=0.95, max_latency_s=3600, on_time_s=300).score == pytest.approx(
        0.2 * (4 + 0.5) / 5
    )
    wild = SubmissionFacts(True, 100, 100, 0, 0, 3, 100, 10.0)
    bad = assess_integrity(wild, min_completeness=0.95, max_latency_s=100)
    assert not bad.passed and any("outside [0, 1]" in r for r in bad.reasons)


def test_behaviour_flags_copies_constants_and_random() -> None:
    rng = np.random.default_rng(1)
    truth = rng.random(200)
    # independent models share the signal, not their errors (rank correlation ~0.6 with each other)
    honest = [np.clip(truth + rng.normal(0, 0.25, 200), 0, 1) for _ in range(3)]
    copy = np.clip(honest[0] + rng.normal(0, 0.001, 200), 0, 1)
    matrix = np.vstack([*honest, copy, np.full(200, 0.3), rng.random(200)])
    ids = ["h1", "h2", "h3", "copy", "const", "rand"]
    assert find_copies(matrix, ids, [1, 2, 3, 9, 5, 6], Thresholds()) == {3: 0}
    assert find_copies(matrix, ids, [9, 2, 3, 1, 5, 6], Thresholds()) == {0: 3}  # the later one copies
    assert gaming_reason(matrix[4]) is not None and gaming_reason(matrix[0]) is None
    ranks = np.vstack([rank_by_score(row, [str(i) for i in range(200)]).astype(float) for row in matrix])
    verdicts = assess_behaviour(matrix, ranks, ids, [1, 2, 3, 9, 5, 6], None, Thresholds())
    assert [v.passed for v in verdicts] == [True, True, True, False, False, False]


def _panel(seed: int, n: int = 300) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    truth = rng.random(n)
    return truth, [np.clip(truth + rng.normal(0, 0.25, n), 0, 1) for _ in range(3)]


def test_a_miner_that_sends_back_an_earlier_ensemble_copied_it() -> None:
    _, honest = _panel(2)
    weights = np.array([0.5, 0.3, 0.2])
    earlier = ensemble_scores(np.vstack(honest), weights, [str(i) for i in range(300)], top_k=3).score
    rng = np.random.default_rng(3)
    echo = np.clip(earlier + rng.normal(0, 0.002, 300), 0, 1)
    # a miner the earlier ensemble was partly built from is never compared with it (weight 0.3);
    # one it did not use is (weight 0)
    contributor = PreviousEnsemble(1, earlier, np.array([0.5, 0.2, 0.3]))
    matrix = np.vstack([honest[0], honest[2], echo])
    assert copies_of_ensemble(matrix, contributor, Thresholds()) == set()
    previous = PreviousEnsemble(1, earlier, np.array([0.5, 0.2, 0.0]))
    assert copies_of_ensemble(matrix, previous, Thresholds()) == {2}
    ranks = np.vstack([rank_by_score(row, [str(i) for i in range(300)]).astype(float) for row in matrix])
    verdicts = assess_behaviour(matrix, ranks, ["h1", "h3", "echo"], [1, 2, 3], None, Thresholds(), previous)
    assert [v.passed for v in verdicts] == [True, True, False]
    assert "plagiarism: near-identical to ensemble version 1, already emitted" in verdicts[2].reasons
    assert verdicts[2].score < verdicts[0].score
    # without an earlier ensemble the echo is still caught: it is a blend of the earlier submissions
    alone = assess_behaviour(matrix, ranks, ["h1", "h3", "echo"], [1, 2, 3], None, Thresholds())
    assert [v.passed for v in alone] == [True, True, False]
    assert any(r.startswith("plagiarism: ") for r in alone[2].reasons)


def test_miners_that_resend_the_scores_an_earlier_ensemble_was_built_from_are_not_copiers() -> None:
    _, honest = _panel(4)
    matrix = np.vstack(honest)
    ids = [str(i) for i in range(300)]
    for weights in (np.array([0.5, 0.3, 0.2]), np.array([0.8, 0.2, 0.0]), np.array([1.0, 0.0, 0.0])):
        earlier = ensemble_scores(matrix, weights, ids, top_k=3).score
        assert copies_of_ensemble(matrix, PreviousEnsemble(1, earlier, weights), Thresholds()) == set()
    # two honest miners, one dominant: the other's share is not near-identical to it either
    pair = matrix[:2]
    earlier = ensemble_scores(pair, np.array([0.85, 0.15]), ids, top_k=3).score
    assert copies_of_ensemble(pair, PreviousEnsemble(1, earlier, np.array([0.85, 0.15])), Thresholds()) == set()
    # a previous ensemble without enough shared alerts is not compared
    sparse = np.full(300, np.nan)
    sparse[:5] = earlier[:5]
    assert copies_of_ensemble(np.vstack([earlier]), PreviousEnsemble(1, sparse, np.zeros(1)), Thresholds()) == set()


def test_stored_ensemble_round_trips_in_parts_and_refuses_a_missing_part() -> None:
    from validator.tables import ENSEMBLE_PART, StoredEnsemble, ids_digest

    scores = np.random.default_rng(5).random(2 * ENSEMBLE_PART + 7)
    scores[3] = np.nan
    stored = StoredEnsemble(4, ids_digest(["a", "b"]), {"m2": 0.25, "m1": 0.75}, scores)
    values = stored.to_values()
    assert len(values) == 3 and "w" in values[0] and "w" not in values[1]
    back = StoredEnsemble.from_values(values)
    assert back is not None and back.version == 4 and back.weights == {"m1": 0.75, "m2": 0.25}
    assert np.array_equal(back.scores, scores, equal_nan=True)
    assert StoredEnsemble.from_values(values[:2]) is None
    assert StoredEnsemble.from_values([values[0], values[1], {**values[2], "v": 3}]) is None
    empty = StoredEnsemble(1, ids_digest([]), {}, np.zeros(0)).to_values()
    assert len(empty) == 1 and StoredEnsemble.from_values(empty) is not None
