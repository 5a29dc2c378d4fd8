"""Training of the three models (alert_scorer, alert_ranker, cluster_scorer) on published ground truth.

Only dates whose labels are published and that lie before ``today`` are used. The last fifth
of the dates (at least one) is held out; its AUC-ROC / AUC-PR go into the metadata.

    dates = labelled_dates(store, "ethereum", start, end, window_days=7)
    for model in train_models(dates, network="ethereum", window_days=7, profile=get_profile("honest-a")):
        model_store.save(model.stem, model.data, model.metadata)
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import xgboost as xgb

from miner.errors import TrainingError
from miner.features import (
    CLUSTER_FEATURE_NAMES,
    FEATURE_VERSION,
    FeatureMatrix,
    build_alert_features,
    build_cluster_features,
    index_of,
)
from miner.metrics import auc_pr, auc_roc
from miner.model_store import model_stem
from miner.profiles import Profile
from miner.scorer import LabelledDay, TrainingDay
from streams.batch import MANIFEST, labels_for, labels_key, read_batch, snapshot_key
from streams.objectstore import ObjectStore
from streams.progress import say, step

DEFAULT_VERSION = "1.0.0"


@dataclass(frozen=True, slots=True)
class LabelledDate:
    """One past date: features of its labelled alerts and clusters with their ground truth."""

    date: dt.date
    alerts: FeatureMatrix
    alert_labels: npt.NDArray[np.int8]
    clusters: FeatureMatrix
    cluster_labels: npt.NDArray[np.int8]


@dataclass(frozen=True, slots=True)
class TrainedModel:
    stem: str
    model_type: str
    data: bytes  # xgboost's UBJSON model
    metadata: dict[str, Any]


def _aligned(features: FeatureMatrix, ids: pa.ChunkedArray, labels: pa.ChunkedArray) -> tuple[FeatureMatrix, Any]:
    """Rows of ``features`` that have a label, with the labels in the same order."""
    where = index_of(pa.array(features.ids, pa.string()), ids)
    keep = where >= 0
    values = np.asarray(labels.to_numpy(zero_copy_only=False), dtype=np.int8)[where[keep]]
    kept = FeatureMatrix(
        [i for i, k in zip(features.ids, keep, strict=True) if k], features.names, features.values[keep]
    )
    return kept, values


def featurise(day: LabelledDay) -> LabelledDate:
    """Features of one labelled day's alerts and clusters that have a label, with the labels aligned."""
    alerts = build_alert_features(day.batch)
    clusters = build_cluster_features(day.batch, alerts)
    a, a_y = _aligned(alerts, day.labels.alerts["alert_id"], day.labels.alerts["label"])
    c, c_y = _aligned(clusters, day.labels.clusters["cluster_id"], day.labels.clusters["label"])
    return LabelledDate(day.date, a, a_y, c, c_y)


def _load_day(store: ObjectStore, key: str, date: dt.date) -> LabelledDay:
    batch = read_batch(store, key)
    labels = labels_for(store, batch.manifest)
    if labels is None:
        msg = f"{date}: ground truth is no longer published"
        raise TrainingError(msg)
    return LabelledDay(date, batch, labels)


def labelled_history(
    store: ObjectStore,
    network: str,
    start: dt.date,
    end: dt.date,
    window_days: int,
    *,
    today: dt.date | None = None,
) -> list[TrainingDay]:
    """Every date in [start, end] before ``today`` whose snapshot and ground truth are published (loaded lazily)."""
    if end < start:
        msg = f"training window ends ({end}) before it starts ({start})"
        raise TrainingError(msg)
    today = today or dt.datetime.now(dt.UTC).date()
    found: list[TrainingDay] = []
    date = start
    while date <= end:
        key = snapshot_key(network, date, window_days, MANIFEST)
        if date >= today:
            say(f"{date}: skipped, not in the past (ground truth cannot be final)")
        elif not store.exists(key):
            say(f"{date}: skipped, no snapshot published")
        elif not store.exists(labels_key(network, date, window_days, MANIFEST)):
            say(f"{date}: skipped, ground truth not published yet")
        else:
            found.append(TrainingDay(date, functools.partial(_load_day, store, key, date)))
        date += dt.timedelta(days=1)
    return found


def featurise_history(days: Sequence[TrainingDay]) -> list[LabelledDate]:
    """Load and featurise each day in turn (only features are kept)."""
    found = []
    for day in days:
        labelled = featurise(day.load())
        a, a_y, c = labelled.alerts, labelled.alert_labels, labelled.clusters
        say(f"{day.date}: {len(a.ids)} labelled alerts ({int(a_y.sum())} positive), {len(c.ids)} clusters")
        found.append(labelled)
    return found


def labelled_dates(
    store: ObjectStore,
    network: str,
    start: dt.date,
    end: dt.date,
    window_days: int,
    *,
    today: dt.date | None = None,
) -> list[LabelledDate]:
    """Features and labels of every date in [start, end] before ``today`` with published ground truth."""
    return featurise_history(labelled_history(store, network, start, end, window_days, today=today))


def _checksum(dates: Sequence[LabelledDate]) -> str:
    digest = hashlib.sha256()
    for d in dates:
        digest.update(d.date.isoformat().encode())
        for part in (d.alerts.values, d.alert_labels, d.clusters.values, d.cluster_labels):
            digest.update(np.ascontiguousarray(part).tobytes())
        digest.update("\n".join(d.alerts.ids + d.clusters.ids).encode())
    return digest.hexdigest()


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


def _stack(
    dates: Sequence[LabelledDate], names: Sequence[str], entity: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int8], npt.NDArray[np.int64]]:
    matrices = [getattr(d, entity).select(names) for d in dates]
    labels = [getattr(d, f"{entity[:-1]}_labels") for d in dates]
    groups = [np.full(len(y), i, dtype=np.int64) for i, y in enumerate(labels)]
    if not matrices:
        return np.empty((0, len(names))), np.empty(0, np.int8), np.empty(0, np.int64)
    return np.vstack(matrices), np.concatenate(labels), np.concatenate(groups)


def _split(dates: Sequence[LabelledDate]) -> tuple[list[LabelledDate], list[LabelledDate]]:
    if len(dates) < 2:
        msg = f"training needs at least 2 labelled past dates (1 held out for validation), found {len(dates)}"
        raise TrainingError(msg)
    ordered = sorted(dates, key=lambda d: d.date)
    held_out = max(1, round(len(ordered) / 5))
    return ordered[:-held_out], ordered[-held_out:]


def train_models(
    dates: Sequence[LabelledDate],
    *,
    network: str,
    window_days: int,
    profile: Profile,
    seed: int = 7,
    threads: int = 2,
    version: str = DEFAULT_VERSION,
    trained_at: dt.datetime | None = None,
    hold_out: bool = True,
) -> list[TrainedModel]:
    """Train the three models of ``profile``; deterministic for the same dates, seed and threads.

    ``hold_out=False`` fits on every date (the caller validated elsewhere); metadata then has no
    validation figures.
    """
    if not profile.uses_models:
        msg = f"profile {profile.name!r} does not use trained models"
        raise TrainingError(msg)
    trained_at = trained_at or dt.datetime.now(dt.UTC).replace(microsecond=0)
    if hold_out:
        train, valid = _split(dates)
    elif dates:
        train, valid = sorted(dates, key=lambda d: d.date), []
    else:
        msg = "training needs at least 1 labelled past date, found none"
        raise TrainingError(msg)
    checksum = _checksum(dates)
    params = profile.hyperparameters(seed, threads)
    alert_names = list(profile.feature_names)
    specs: list[tuple[str, str, list[str], dict[str, Any]]] = [
        ("alert_scorer", "alerts", alert_names, {"objective": "binary:logistic", "eval_metric": "auc"}),
        ("alert_ranker", "alerts", alert_names, {"objective": "rank:pairwise", "eval_metric": "ndcg"}),
        ("cluster_scorer", "clusters", list(CLUSTER_FEATURE_NAMES), {"objective": "binary:logistic"}),
    ]
    models = []
    for model_type, entity, names, objective in specs:
        x, y, groups = _stack(train, names, entity)
        vx, vy, _ = _stack(valid, names, entity)
        if y.size == 0 or y.min() == y.max():
            msg = f"{model_type}: training dates hold {y.size} labelled rows of one class only"
            raise TrainingError(msg)
        hyper = {**params, **objective}
        with step(f"training {model_type} on {y.size} rows x {len(names)} features ({len(train)} dates)"):
            if model_type == "alert_ranker":
                matrix = xgb.DMatrix(x, label=y, qid=groups, feature_names=names, nthread=threads)
            else:
                matrix = xgb.DMatrix(x, label=y, feature_names=names, nthread=threads)
            booster = xgb.train(hyper, matrix, num_boost_round=profile.rounds)
        if valid:
            predicted = booster.predict(xgb.DMatrix(vx, feature_names=names, nthread=threads))
            roc, pr = auc_roc(vy, predicted), auc_pr(vy, predicted)
            say(f"{model_type}: validation AUC-ROC {roc:.3f}, AUC-PR {pr:.3f} on {vy.size} rows")
        else:
            roc = pr = float("nan")
        stem = model_stem(model_type, network, version, trained_at)
        metadata = {
            "name": stem,
            "model_type": model_type,
            "network": network,
            "version": version,
            "trained_at": trained_at.astimezone(dt.UTC).isoformat(),
            "profile": profile.name,
            "training_window": {
                "start": min(d.date for d in dates).isoformat(),
                "end": max(d.date for d in dates).isoformat(),
                "window_days": window_days,
                "train_dates": [d.date.isoformat() for d in train],
                "validation_dates": [d.date.isoformat() for d in valid],
            },
            "feature_version": FEATURE_VERSION,
            "feature_names": names,
            "hyperparameters": {**hyper, "num_boost_round": profile.rounds},
            "data_checksum": checksum,
            "train_rows": int(y.size),
            "validation": {
                "rows": int(vy.size),
                "positives": int(vy.sum()),
                "auc_roc": _finite(roc),
                "auc_pr": _finite(pr),
            },
        }
        models.append(TrainedModel(stem, model_type, bytes(booster.save_raw("ubj")), metadata))
    return models
