"""Pure scoring: ranks, percentiles, feature order, idempotence; and the metrics it is judged by."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import xgboost as xgb
from miner_synth import NETWORK, Published

from miner.errors import MinerError
from miner.features import FeatureMatrix, build_alert_features, build_cluster_features
from miner.metrics import auc_pr, auc_roc
from miner.model_store import ModelStore
from miner.scoring import ScoringModels, percentile, predict, rank_scores, score_with_models
from streams.batch import read_batch


def _models(model_store: ModelStore) -> ScoringModels:
    return ScoringModels(*(model_store.latest(t, NETWORK) for t in ("alert_scorer", "alert_ranker", "cluster_scorer")))


def test_ranks_put_the_highest_score_first_and_break_ties_by_id() -> None:
    ids = ["c", "a", "b", "d"]
    ranks = rank_scores(ids, np.array([0.5, 0.9, 0.5, 0.1]))
    assert ranks.tolist() == [3, 1, 2, 4]


def test_percentile_gives_ties_the_same_value() -> None:
    assert percentile(np.array([1.0, 2.0, 2.0, 3.0])).tolist() == [0.25, 0.625, 0.625, 1.0]
    assert percentile(np.array([])).size == 0


def test_metrics_match_brute_force() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200), 1)  # many ties
    pos, neg = s[y == 1], s[y == 0]
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert auc_roc(y, s) == pytest.approx(brute)
    assert auc_roc(y, y) == 1.0
    assert np.isnan(auc_roc([1, 1], [0.1, 0.2]))
    assert auc_pr([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx((1 + 2 / 3) / 2)


def test_prediction_uses_the_trained_feature_order(published: Published, model_store_a: ModelStore) -> None:
    """The seed's train/score column-order bug: scoring picks columns by name, whatever order they come in."""
    batch = read_batch(published.store, published.keys[-1])
    features = build_alert_features(batch)
    model = model_store_a.latest("alert_scorer", NETWORK)
    reference = predict(model, features)
    perm = np.random.default_rng(0).permutation(len(features.names))
    permuted = FeatureMatrix(features.ids, tuple(features.names[i] for i in perm), features.values[:, perm])
    np.testing.assert_array_equal(predict(model, permuted), reference)
    with pytest.raises(MinerError, match="not built"):
        predict(model, FeatureMatrix(features.ids, features.names[:-1], features.values[:, :-1]))
    stale = dataclasses.replace(model, metadata={**model.metadata, "feature_version": "0.1.0"})
    with pytest.raises(MinerError, match="retrain"):
        predict(stale, features)


@pytest.mark.parametrize("store", ["model_store_a", "model_store_b"])  # b: a subset of the features
def test_prediction_in_place_gives_the_dmatrix_scores_bit_for_bit(
    published: Published, store: str, request: pytest.FixtureRequest
) -> None:
    features = build_alert_features(read_batch(published.store, published.keys[-1]))
    values = features.values.copy()
    values[::3, ::2] = np.nan  # missing values take the trees' default branches in both
    features = FeatureMatrix(features.ids, features.names, values)
    models = _models(request.getfixturevalue(store))
    for model in (models.alert_scorer, models.alert_ranker):
        names = model.feature_names
        reference = model.booster.predict(xgb.DMatrix(features.select(names), feature_names=names))
        np.testing.assert_array_equal(predict(model, features), reference)
    renamed = dataclasses.replace(model, metadata={**model.metadata, "feature_names": list(reversed(names))})
    with pytest.raises(MinerError, match="other features than its booster"):
        predict(renamed, features)


def test_rescoring_the_same_batch_is_identical(published: Published, model_store_a: ModelStore) -> None:
    runs = []
    for _ in range(2):
        batch = read_batch(published.store, published.keys[-1])
        alerts = build_alert_features(batch)
        runs.append(
            score_with_models(alerts, build_cluster_features(batch, alerts), _models(model_store_a), ranker_weight=0.3)
        )
    a, b = runs
    assert a.alert_ids == b.alert_ids and a.cluster_ids == b.cluster_ids
    assert a.alert_scores.tobytes() == b.alert_scores.tobytes()
    assert a.cluster_scores.tobytes() == b.cluster_scores.tobytes()
    assert np.array_equal(a.ranks(), b.ranks())
    assert set(a.model_versions) == {"alert_scorer", "alert_ranker", "cluster_scorer"}


def test_ranker_blend_keeps_scores_in_unit_interval(published: Published, model_store_a: ModelStore) -> None:
    batch = read_batch(published.store, published.keys[-1])
    alerts = build_alert_features(batch)
    clusters = build_cluster_features(batch, alerts)
    plain = score_with_models(alerts, clusters, _models(model_store_a), ranker_weight=0.0)
    blended = score_with_models(alerts, clusters, _models(model_store_a), ranker_weight=0.5)
    assert not np.array_equal(plain.alert_scores, blended.alert_scores)
    assert ((blended.alert_scores >= 0) & (blended.alert_scores <= 1)).all()
