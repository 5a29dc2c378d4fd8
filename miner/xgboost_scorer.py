"""The built-in Scorer: three XGBoost models (alert_scorer, alert_ranker, cluster_scorer) per profile.

scorer = XGBoostScorer(get_profile("honest-a"), network="ethereum").load(models_path)
scores = scorer.score(batch)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import xgboost as xgb

from miner.errors import ModelNotFoundError, TrainingError
from miner.features import build_alert_features, build_cluster_features
from miner.model_store import MODEL_TYPES, LoadedModel, ModelStore
from miner.profiles import Profile
from miner.scorer import Scorer, TrainingDay
from miner.scoring import BatchScores, ScoringModels, score_with_models
from miner.training import featurise_history, train_models
from streams.batch import Batch


def _loaded(stem: str, model_type: str, network: str, data: bytes, metadata: dict[str, object]) -> LoadedModel:
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    return LoadedModel(stem, model_type, network, booster, dict(metadata))


def _threaded(models: ScoringModels, threads: int) -> ScoringModels:
    """The boosters predict on ``threads`` threads (a loaded booster would use every core)."""
    for model in (models.alert_scorer, models.alert_ranker, models.cluster_scorer):
        model.booster.set_param({"nthread": threads})
    return models


@dataclass(frozen=True, slots=True)
class XGBoostScorer:
    """One profile's XGBoost models for one network; ``models`` is None until fitted or loaded."""

    profile: Profile
    network: str
    seed: int = 7
    threads: int = 2
    window_days: int = 7
    models: ScoringModels | None = None
    _saved: tuple[tuple[str, str, bytes, dict[str, object]], ...] = ()

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def version(self) -> str:
        return self.models.alert_scorer.version if self.models else ""

    @property
    def trainable(self) -> bool:
        return True

    def fit(self, history: Sequence[TrainingDay]) -> Scorer:
        dates = featurise_history(history)
        trained = train_models(
            dates,
            network=self.network,
            window_days=self.window_days,
            profile=self.profile,
            seed=self.seed,
            threads=self.threads,
            hold_out=False,
            trained_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
        )
        by_type = {m.model_type: m for m in trained}
        models = _threaded(
            ScoringModels(
                *(_loaded(by_type[t].stem, t, self.network, by_type[t].data, by_type[t].metadata) for t in MODEL_TYPES)
            ),
            self.threads,
        )
        saved = tuple((m.stem, m.model_type, m.data, m.metadata) for m in trained)
        return replace(self, models=models, _saved=saved)

    def save(self, directory: Path) -> str:
        if not self._saved:
            msg = "only a model fitted in this process can be saved (a loaded one is already on disk)"
            raise TrainingError(msg)
        model_store = ModelStore(directory)
        for stem, _, data, metadata in self._saved:
            model_store.save(stem, data, dict(metadata))
        return self.version

    def load(self, directory: Path) -> Scorer:
        model_store = ModelStore(directory)
        models = ScoringModels(*(model_store.latest(t, self.network) for t in MODEL_TYPES))
        return replace(self, models=_threaded(models, self.threads), _saved=())

    def score(self, batch: Batch) -> BatchScores:
        if self.models is None:
            msg = f"no trained model for {self.network}: run `riskstream miner train` first"
            raise ModelNotFoundError(msg)
        alerts = build_alert_features(batch)
        clusters = build_cluster_features(batch, alerts)
        return score_with_models(alerts, clusters, self.models, ranker_weight=self.profile.ranker_weight)
