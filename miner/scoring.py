"""Pure scoring: feature matrices + models -> alert scores, batch-wide ranks, cluster scores.

scores = score_with_models(alert_features, cluster_features, models, ranker_weight=0.3)
scores.ranks()   # 1 = highest score, ties by alert id
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from miner.errors import MinerError
from miner.features import FeatureMatrix
from miner.model_store import LoadedModel
from streams.submission import rank_by_score

Scores = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ScoringModels:
    alert_scorer: LoadedModel
    alert_ranker: LoadedModel
    cluster_scorer: LoadedModel

    def versions(self) -> dict[str, str]:
        return {m.model_type: m.version for m in (self.alert_scorer, self.alert_ranker, self.cluster_scorer)}


@dataclass(frozen=True, slots=True)
class BatchScores:
    """What a miner submits for one batch, before it is cut into records."""

    alert_ids: list[str]
    alert_scores: Scores
    cluster_ids: list[str]
    cluster_scores: Scores
    model_versions: dict[str, str] = field(default_factory=dict)
    alert_ranks: npt.NDArray[np.int64] | None = None  # None: ranked by score, ties by id

    def ranks(self) -> npt.NDArray[np.int64]:
        if self.alert_ranks is not None:
            return np.asarray(self.alert_ranks, dtype=np.int64)
        return rank_scores(self.alert_ids, self.alert_scores)

    def subset(self, keep: npt.NDArray[np.bool_]) -> BatchScores:
        ids = [i for i, k in zip(self.alert_ids, keep, strict=True) if k]
        return BatchScores(ids, self.alert_scores[keep], self.cluster_ids, self.cluster_scores, self.model_versions)


def rank_scores(ids: Sequence[str], scores: Scores) -> npt.NDArray[np.int64]:
    """1-based ranks over the whole batch: highest score first, ties broken by ascending id."""
    return rank_by_score(ids, scores)


def percentile(values: Scores) -> Scores:
    """Mid-rank percentile in (0, 1]; equal values get equal percentiles."""
    if values.size == 0:
        return values.astype(np.float64)
    ordered = np.sort(values)
    low = np.searchsorted(ordered, values, side="left")
    high = np.searchsorted(ordered, values, side="right")
    return (low + high + 1) / (2.0 * values.size)


def predict(model: LoadedModel, features: FeatureMatrix) -> Scores:
    """The model's output for every row, on exactly the features (and order) it was trained on.

    In place on the feature matrix (no DMatrix: that would be a second copy of the day's features);
    the same trees on the same float32 values give the same scores bit for bit.
    """
    trained_version = model.metadata.get("feature_version")
    if trained_version != features.version:
        msg = (
            f"model {model.version} was trained on feature version {trained_version}, "
            f"this miner builds {features.version}: retrain it"
        )
        raise MinerError(msg)
    names = model.feature_names
    if model.booster.feature_names not in (None, names):
        msg = f"model {model.version}: its metadata names other features than its booster: retrain it"
        raise MinerError(msg)
    try:
        matrix = features.select(names)
    except KeyError as exc:
        raise MinerError(str(exc)) from exc
    return np.asarray(model.booster.inplace_predict(matrix), dtype=np.float64)


def score_with_models(
    alerts: FeatureMatrix,
    clusters: FeatureMatrix,
    models: ScoringModels,
    *,
    ranker_weight: float = 0.0,
) -> BatchScores:
    """Alert score = (1-w) * P(scorer) + w * percentile(ranker); cluster score = P(cluster scorer)."""
    alert_scores = predict(models.alert_scorer, alerts) if alerts.ids else np.empty(0)
    if ranker_weight > 0 and alerts.ids:
        margins = predict(models.alert_ranker, alerts)
        alert_scores = (1.0 - ranker_weight) * alert_scores + ranker_weight * percentile(margins)
    cluster_scores = predict(models.cluster_scorer, clusters) if clusters.ids else np.empty(0)
    return BatchScores(
        alerts.ids,
        np.clip(alert_scores, 0.0, 1.0),
        clusters.ids,
        np.clip(cluster_scores, 0.0, 1.0),
        models.versions(),
    )
