"""A third-party-style scorer for the plug-in tests: scores by one column, or misbehaves on request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from miner.scorer import Batch, BatchScores, Scorer, ScorerContext, TrainingDay


@dataclass(frozen=True, slots=True)
class ColumnScorer:
    """Score = the SOT's alert_confidence_score (clipped); ``mode`` breaks the contract on purpose."""

    mode: str = "ok"
    version: str = ""
    name: str = "column"
    trainable: bool = True

    def fit(self, history: Sequence[TrainingDay]) -> Scorer:
        return replace(self, version=f"column-{len(history)}d")

    def save(self, directory: Path) -> str:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "column.txt").write_text(self.version)
        return self.version

    def load(self, directory: Path) -> Scorer:
        from miner.errors import ModelNotFoundError

        path = directory / "column.txt"
        if not path.is_file():
            raise ModelNotFoundError(f"no column model in {directory}")
        return replace(self, version=path.read_text())

    def score(self, batch: Batch) -> BatchScores:
        ids = [str(i) for i in batch.alerts["alert_id"].to_pylist()]
        values = np.clip(np.asarray(batch.alerts["alert_confidence_score"].to_numpy(), dtype=np.float64), 0, 1)
        clusters = [str(i) for i in batch.clusters["cluster_id"].to_pylist()]
        ranks = None
        if self.mode == "nan":
            values[0] = np.nan
        elif self.mode == "unknown":
            ids[0] = "not-in-the-batch"
        elif self.mode == "ranks":
            ranks = np.ones(len(ids), dtype=np.int64)
        elif self.mode == "reversed-ranks":  # a scorer may rank its own way; the agent sends them as given
            ranks = np.arange(len(ids), 0, -1)
        return BatchScores(ids, values, clusters, np.full(len(clusters), 0.5), {}, ranks)


def factory(context: ScorerContext) -> Scorer:
    return ColumnScorer(mode=context.settings.network and "ok")


def broken(context: ScorerContext) -> object:
    return object()
