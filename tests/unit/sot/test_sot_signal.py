"""The planted ground truth: learnable from history and feature combinations, given away by no column."""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import xgboost as xgb

from sot.alerts import RISK_INDICATORS
from sot.generator import generate_batch
from streams import label_metrics

SIZES = {"alerts": 1000, "addresses": 5000, "flows": 40_000, "clusters": 60, "seed": 5}
FIRST = dt.date(2026, 2, 1)
TRAIN_DAYS, TEST_OFFSET = 4, 6  # train on four past days, score a day two days later
_RISK = {"low": 0.0, "medium": 1.0, "high": 2.0, "critical": 3.0}


def auc(y: npt.NDArray[np.int8], score: npt.NDArray[np.float64]) -> float:
    """AUC-ROC with ties counted half."""
    return label_metrics.auc_roc(score, y)


def _day(offset: int) -> pa.Table:
    batch = generate_batch("ethereum", FIRST + dt.timedelta(days=offset), **SIZES)
    alerts = batch.tables["alerts.parquet"]
    features = batch.tables["features.parquet"]
    features = features.rename_columns(
        [f"addr_{c}" if c in ("first_seen", "last_seen") else c for c in features.column_names]
    )
    labels = batch.tables["address_labels.parquet"]
    known = dict(zip(labels.column("address").to_pylist(), labels.column("risk_level").to_pylist(), strict=True))
    joined = alerts.drop_columns(["risk_indicators"]).join(features, "address", join_type="left outer")
    joined = joined.join(batch.alert_labels.rename_columns(["alert_id", "y"]), "alert_id").sort_by("alert_id")
    public = [_RISK.get(known.get(a, ""), -1.0) for a in joined.column("address").to_pylist()]
    joined = joined.append_column("public_risk", pa.array(public, pa.float64()))
    indicators = alerts.sort_by("alert_id").column("risk_indicators").to_pylist()
    for name in RISK_INDICATORS:
        joined = joined.append_column(f"ind_{name}", pa.array([float(name in row) for row in indicators]))
    return joined


@pytest.fixture(scope="module")
def days() -> list[pa.Table]:
    return [_day(d) for d in [*range(TRAIN_DAYS), TEST_OFFSET]]


def _numeric(table: pa.Table) -> list[str]:
    skip = {"y", "window_days", "processing_date"}
    return [
        f.name
        for f in table.schema
        if f.name not in skip
        and (
            pa.types.is_integer(f.type)
            or pa.types.is_floating(f.type)
            or pa.types.is_boolean(f.type)
            or pa.types.is_timestamp(f.type)
        )
    ]


def _matrix(table: pa.Table, columns: list[str]) -> npt.NDArray[np.float64]:
    out = []
    for name in columns:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            col = pc.cast(col, pa.int64())
        out.append(np.nan_to_num(col.to_numpy(zero_copy_only=False).astype(np.float64), nan=-1.0))
    return np.stack(out, axis=1)


def _fit_score(train: pa.Table, test: pa.Table, columns: list[str], depth: int) -> float:
    params = {"max_depth": depth, "eta": 0.1, "subsample": 0.8, "objective": "binary:logistic", "nthread": 1, "seed": 0}
    model = xgb.train(params, xgb.DMatrix(_matrix(train, columns), train.column("y").to_numpy()), 150)
    return auc(test.column("y").to_numpy(), model.predict(xgb.DMatrix(_matrix(test, columns))))


def test_no_single_published_column_predicts_the_label(days: list[pa.Table]) -> None:
    table = pa.concat_tables(days)
    y = table.column("y").to_numpy()
    found = {}
    for name in _numeric(table):
        a = auc(y, _matrix(table, [name])[:, 0])
        found[name] = max(a, 1 - a)
    # categories at their strongest: each value replaced by its in-sample positive rate
    for name in ("typology_type", "pattern_id", "severity", "suspected_address_type"):
        values = table.column(name).to_pylist()
        rate = {v: y[[x == v for x in values]].mean() for v in set(values)}
        found[name] = auc(y, np.array([rate[v] for v in values]))
    worst = max(found, key=lambda k: found[k])
    assert found[worst] <= 0.9, f"{worst} gives the label away: AUC {found[worst]:.3f}"
    assert found["alert_confidence_score"] > 0.55  # the owner's score is informative, just not great


def test_no_cluster_column_predicts_the_cluster_label() -> None:
    batches = [generate_batch("ethereum", FIRST + dt.timedelta(days=d), **{**SIZES, "clusters": 150}) for d in range(3)]
    clusters = pa.concat_tables([b.tables["clusters.parquet"] for b in batches])
    y = pa.concat_tables([b.cluster_labels for b in batches]).column("label").to_numpy()
    assert 0 < y.sum() < len(y)
    for name in ("total_alerts", "total_volume_usd", "confidence_avg"):
        a = auc(y, clusters.column(name).to_numpy().astype(np.float64))
        assert max(a, 1 - a) <= 0.9, name
    severity = np.array([_RISK[s] for s in clusters.column("severity_max").to_pylist()])
    assert max(auc(y, severity), 1 - auc(y, severity)) <= 0.9


def test_a_model_trained_on_past_days_beats_the_owners_confidence(days: list[pa.Table]) -> None:
    train, test = pa.concat_tables(days[:TRAIN_DAYS]), days[-1]
    y = test.column("y").to_numpy()
    confidence = auc(y, test.column("alert_confidence_score").to_numpy())
    model = _fit_score(train, test, _numeric(train), depth=4)
    assert model > 0.7
    assert model > confidence + 0.08, (model, confidence)


def test_models_reach_different_quality(days: list[pa.Table]) -> None:
    train, test = pa.concat_tables(days[:TRAIN_DAYS]), days[-1]
    columns = _numeric(train)
    alert_only = _fit_score(train, test, ["alert_confidence_score", "volume_usd"], depth=4)
    stumps = _fit_score(train, test, columns, depth=1)  # no interactions
    trees = _fit_score(train, test, columns, depth=4)
    assert alert_only + 0.08 < stumps < trees - 0.02, (alert_only, stumps, trees)


def test_history_matters_addresses_come_back_with_the_same_truth(days: list[pa.Table]) -> None:
    past: dict[str, int] = {}
    for day in days[:TRAIN_DAYS]:
        past.update(zip(day.column("address").to_pylist(), day.column("y").to_pylist(), strict=True))
    test = days[-1]
    seen = [
        (past[a], y)
        for a, y in zip(test.column("address").to_pylist(), test.column("y").to_pylist(), strict=True)
        if a in past
    ]
    assert len(seen) > 0.2 * test.num_rows
    assert np.mean([p == y for p, y in seen]) == 1.0  # the hidden risk of an address does not change
