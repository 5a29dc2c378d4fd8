"""A HistGradientBoosting scorer for riskstream, installed as the ``hgb`` entry point of ``riskstream.scorers``.

It knows nothing of the built-in XGBoost miner: its features are its own (``features.py``), its
model file is its own (``hgb-<version>.pkl`` plus ``hgb-<version>.json``), and the agent does the rest.

    riskstream miner train --miner-id me --scorer hgb --start-date D1 --end-date D2
    riskstream miner run --miner-id me --scorer hgb
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]  # no type hints shipped

from hgb_miner.features import FEATURE_NAMES, VERSION, alert_matrix, cluster_matrix
from miner.errors import ModelNotFoundError, TrainingError
from miner.scorer import Batch, BatchScores, Scorer, ScorerContext, TrainingDay

_PREFIX = "hgb-"


def _labelled_rows(day: Any) -> tuple[np.ndarray, np.ndarray]:
    matrix = alert_matrix(day.batch)
    labels = day.labels.alerts
    where = pc.index_in(day.batch.alerts["alert_id"], value_set=labels["alert_id"].combine_chunks())
    position = np.asarray(where.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    keep = position >= 0
    y = np.asarray(labels["label"].to_numpy(zero_copy_only=False), dtype=np.int8)[position[keep]]
    return matrix[keep], y


@dataclass(frozen=True, slots=True)
class HGBScorer:
    """Gradient-boosted trees on histogram bins; cluster score = 0.5 * mean + 0.5 * max of its alerts."""

    seed: int = 7
    threads: int = 2
    model: HistGradientBoostingClassifier | None = None
    version: str = ""
    name: str = "hgb"
    trainable: bool = True

    def fit(self, history: Sequence[TrainingDay]) -> Scorer:
        parts = [_labelled_rows(day.load()) for day in history]
        if not parts:
            msg = "hgb: no labelled dates to fit on"
            raise TrainingError(msg)
        x = np.vstack([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        if y.min() == y.max():
            msg = f"hgb: {y.size} labelled alerts of one class only"
            raise TrainingError(msg)
        model = HistGradientBoostingClassifier(
            max_iter=150, learning_rate=0.08, max_leaf_nodes=31, l2_regularization=1.0, random_state=self.seed
        )
        model.fit(x, y)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d_%H%M%S")
        digest = hashlib.sha256(np.ascontiguousarray(x).tobytes() + y.tobytes()).hexdigest()[:8]
        return replace(self, model=model, version=f"{_PREFIX}{stamp}-{digest}")

    def score(self, batch: Batch) -> BatchScores:
        if self.model is None:
            msg = "hgb: no model fitted or loaded; run `riskstream miner train --scorer hgb`"
            raise ModelNotFoundError(msg)
        ids = [str(i) for i in batch.alerts["alert_id"].to_pylist()]
        matrix = alert_matrix(batch)
        scores = self.model.predict_proba(matrix)[:, 1] if ids else np.empty(0)
        cluster_ids, per_cluster = cluster_matrix(batch, scores)
        cluster_scores = 0.5 * per_cluster[:, 0] + 0.5 * per_cluster[:, 1] if cluster_ids else np.empty(0)
        return BatchScores(ids, np.clip(scores, 0.0, 1.0), cluster_ids, np.clip(cluster_scores, 0.0, 1.0))

    def save(self, directory: Path) -> str:
        if self.model is None:
            msg = "hgb: nothing fitted to save"
            raise TrainingError(msg)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{self.version}.pkl").write_bytes(pickle.dumps(self.model))
        meta = {"version": self.version, "features": list(FEATURE_NAMES), "feature_version": VERSION}
        (directory / f"{self.version}.json").write_text(json.dumps(meta))  # written last: marks it complete
        return self.version

    def load(self, directory: Path) -> Scorer:
        complete = sorted(p for p in directory.glob(f"{_PREFIX}*.json") if p.with_suffix(".pkl").is_file())
        if not complete:
            msg = f"hgb: no model in {directory}; run `riskstream miner train --scorer hgb`"
            raise ModelNotFoundError(msg)
        meta = json.loads(complete[-1].read_text())
        if meta.get("feature_version") != VERSION:
            msg = f"hgb: {complete[-1].name} was fitted on features {meta.get('feature_version')}, not {VERSION}"
            raise ModelNotFoundError(msg)
        # only files this miner wrote itself are unpickled (its own model directory)
        model = pickle.loads(complete[-1].with_suffix(".pkl").read_bytes())  # noqa: S301
        return replace(self, model=model, version=str(meta["version"]))


def factory(context: ScorerContext) -> Scorer:
    """The entry point: one scorer per miner, seeded by the miner's settings."""
    return HGBScorer(seed=context.seed, threads=context.threads)


__all__ = ["HGBScorer", "factory"]
