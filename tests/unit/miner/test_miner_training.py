"""Training: deterministic models with complete metadata, the model store, and beating the SOT's confidence."""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pytest
from miner_synth import NETWORK, WINDOW, Published

from miner.errors import ModelNotFoundError, TrainingError
from miner.features import FEATURE_NAMES, FEATURE_VERSION, build_alert_features, build_cluster_features
from miner.metrics import auc_pr, auc_roc
from miner.model_store import ModelStore
from miner.profiles import get_profile
from miner.scoring import ScoringModels, score_with_models
from miner.training import labelled_dates, train_models
from streams.batch import read_batch

FUTURE = dt.date(2027, 1, 1)


def _models(model_store: ModelStore) -> ScoringModels:
    return ScoringModels(*(model_store.latest(t, NETWORK) for t in ("alert_scorer", "alert_ranker", "cluster_scorer")))


def test_training_is_deterministic_for_a_seed(published: Published) -> None:
    dates = labelled_dates(
        published.store, NETWORK, published.train_dates[0], published.train_dates[2], WINDOW, today=FUTURE
    )
    stamp = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    profile = get_profile("honest-b")
    first = train_models(dates, network=NETWORK, window_days=WINDOW, profile=profile, seed=3, trained_at=stamp)
    second = train_models(dates, network=NETWORK, window_days=WINDOW, profile=profile, seed=3, trained_at=stamp)
    assert [m.data for m in first] == [m.data for m in second]
    assert [m.metadata for m in first] == [m.metadata for m in second]
    other = train_models(dates, network=NETWORK, window_days=WINDOW, profile=profile, seed=4, trained_at=stamp)
    assert [m.data for m in other] != [m.data for m in first]


def test_model_files_and_metadata(model_store_a: ModelStore, published: Published) -> None:
    stems = model_store_a.versions()
    assert len(stems) == 3
    for stem in stems:
        assert re.fullmatch(r"(alert_scorer|alert_ranker|cluster_scorer)_ethereum_v1\.0\.0_\d{8}_\d{6}", stem)
        assert (model_store_a.directory / f"{stem}.ubj").is_file()
    meta = json.loads((model_store_a.directory / f"{model_store_a.versions('alert_scorer')[0]}.json").read_text())
    assert meta["feature_names"] == list(FEATURE_NAMES)
    assert meta["feature_version"] == FEATURE_VERSION
    assert meta["hyperparameters"]["objective"] == "binary:logistic"
    assert meta["hyperparameters"]["seed"] == 7
    window = meta["training_window"]
    assert window["start"] == published.train_dates[0].isoformat()
    assert window["end"] == published.train_dates[-1].isoformat()
    assert window["validation_dates"] == [d.isoformat() for d in published.train_dates[-1:]]
    assert len(meta["data_checksum"]) == 64
    assert 0.5 < meta["validation"]["auc_roc"] <= 1.0
    assert 0.0 < meta["validation"]["auc_pr"] <= 1.0
    ranker = json.loads((model_store_a.directory / f"{model_store_a.versions('alert_ranker')[0]}.json").read_text())
    assert ranker["hyperparameters"]["objective"] == "rank:pairwise"


def test_honest_b_trains_on_its_feature_subset_in_canonical_order(model_store_b: ModelStore) -> None:
    model = model_store_b.latest("alert_scorer", NETWORK)
    names = model.feature_names
    assert names == list(get_profile("honest-b").feature_names)
    assert names == [n for n in FEATURE_NAMES if n in names]
    assert "flow_in_usd" not in names
    assert model.booster.feature_names == names
    assert model.metadata["hyperparameters"]["max_depth"] == 3


@pytest.mark.parametrize("profile", ["honest-a", "honest-b"])
def test_honest_profiles_beat_the_sot_confidence_on_held_out_dates(
    profile: str, published: Published, model_store_a: ModelStore, model_store_b: ModelStore
) -> None:
    model_store = model_store_a if profile == "honest-a" else model_store_b
    models = _models(model_store)
    labels, ours, baseline, cluster_labels, cluster_scores = [], [], [], [], []
    for synth, key in zip(published.held_out, published.keys[-len(published.held_out) :], strict=True):
        assert synth.date.isoformat() not in json.dumps(models.alert_scorer.metadata["training_window"])
        batch = read_batch(published.store, key)
        alerts = build_alert_features(batch)
        clusters = build_cluster_features(batch, alerts)
        scores = score_with_models(alerts, clusters, models, ranker_weight=get_profile(profile).ranker_weight)
        truth = dict(
            zip(synth.alert_labels["alert_id"].to_pylist(), synth.alert_labels["label"].to_pylist(), strict=True)
        )
        labels += [truth[i] for i in scores.alert_ids]
        ours += list(scores.alert_scores)
        baseline += list(alerts.column("alert_confidence_score"))
        c_truth = dict(
            zip(synth.cluster_labels["cluster_id"].to_pylist(), synth.cluster_labels["label"].to_pylist(), strict=True)
        )
        cluster_labels += [c_truth[i] for i in scores.cluster_ids]
        cluster_scores += list(scores.cluster_scores)
    ours_auc, base_auc = auc_roc(labels, ours), auc_roc(labels, baseline)
    assert ours_auc > base_auc + 0.1, (ours_auc, base_auc)
    assert auc_pr(labels, ours) > auc_pr(labels, baseline)
    assert all(0.0 <= s <= 1.0 for s in ours + cluster_scores)
    assert len(cluster_scores) > 0


def test_only_published_past_dates_are_used(published: Published) -> None:
    first, last = published.train_dates[0], published.train_dates[-1]
    dates = labelled_dates(
        published.store, NETWORK, first - dt.timedelta(days=2), last, WINDOW, today=published.train_dates[3]
    )
    assert [d.date for d in dates] == published.train_dates[:3]  # no snapshot before, none from "today" on


def test_training_refuses_too_few_dates(published: Published) -> None:
    day = published.train_dates[0]
    dates = labelled_dates(published.store, NETWORK, day, day, WINDOW, today=FUTURE)
    with pytest.raises(TrainingError, match="at least 2"):
        train_models(dates, network=NETWORK, window_days=WINDOW, profile=get_profile("honest-a"))
    with pytest.raises(TrainingError, match="before it starts"):
        labelled_dates(published.store, NETWORK, day, day - dt.timedelta(days=1), WINDOW)


def test_registry_returns_the_newest_model(tmp_path: object, model_store_a: ModelStore) -> None:
    from pathlib import Path

    model_store = ModelStore(Path(str(tmp_path)))
    with pytest.raises(ModelNotFoundError, match="riskstream miner train"):
        model_store.latest("alert_scorer", NETWORK)
    old = model_store_a.versions("alert_scorer")[0]
    data = (model_store_a.directory / f"{old}.ubj").read_bytes()
    meta = json.loads((model_store_a.directory / f"{old}.json").read_text())
    for stem in ("alert_scorer_ethereum_v1.0.0_20260101_000000", "alert_scorer_ethereum_v0.9.0_20260301_000000"):
        model_store.save(stem, data, meta)
    model_store.save("alert_scorer_bitcoin_v2.0.0_20270101_000000", data, meta)
    (model_store.directory / "alert_scorer_ethereum_v3.0.0_20280101_000000.json").write_text("{}")  # no model file
    assert model_store.latest("alert_scorer", NETWORK).version == "alert_scorer_ethereum_v0.9.0_20260301_000000"
    assert model_store.latest("alert_scorer", "bitcoin").network == "bitcoin"
    loaded = model_store.latest("alert_scorer", NETWORK)
    assert np.isfinite(
        loaded.booster.predict(
            __import__("xgboost").DMatrix(np.zeros((1, len(loaded.feature_names))), feature_names=loaded.feature_names)
        )
    ).all()
