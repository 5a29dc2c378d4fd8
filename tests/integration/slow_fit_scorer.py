"""A scorer whose fit takes a while (for the retraining test): scores follow the SOT's confidence.

Its version names the dates it was fitted on, so a test can tell which model scored a batch.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from miner.errors import ModelNotFoundError
from miner.scorer import Batch, BatchScores, Scorer, ScorerContext, TrainingDay

FIT_SECONDS = 4.0


@dataclass(frozen=True, slots=True)
class SlowFitScorer:
    version: str = ""
    name: str = "slow-fit"
    trainable: bool = True

    def fit(self, history: Sequence[TrainingDay]) -> Scorer:
        for day in history:
            day.load()  # reads every labelled day like a real model would
        time.sleep(FIT_SECONDS)
        dates = ",".join(str(d.date) for d in history)
        return replace(self, version=f"fit-{len(history)}d-{hashlib.sha256(dates.encode()).hexdigest()[:8]}")

    def score(self, batch: Batch) -> BatchScores:
        if not self.version:
            raise ModelNotFoundError("slow-fit: not trained")
        ids = [str(i) for i in batch.alerts["alert_id"].to_pylist()]
        values = np.clip(np.asarray(batch.alerts["alert_confidence_score"].to_numpy(), dtype=np.float64), 0, 1)
        clusters = [str(i) for i in batch.clusters["cluster_id"].to_pylist()]
        return BatchScores(ids, values, clusters, np.full(len(clusters), 0.5))

    def save(self, directory: Path) -> str:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{self.version}.json").write_text(json.dumps({"version": self.version, "at": time.time()}))
        return self.version

    def load(self, directory: Path) -> Scorer:
        found = sorted(directory.glob("fit-*.json"), key=lambda p: json.loads(p.read_text())["at"])
        if not found:
            raise ModelNotFoundError(f"slow-fit: no model in {directory}")
        return replace(self, version=json.loads(found[-1].read_text())["version"])


def factory(context: ScorerContext) -> Scorer:
    return SlowFitScorer()
