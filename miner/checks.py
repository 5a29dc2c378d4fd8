"""The agent's check of what a scorer returned, before anything is cut into records.

A plug-in is code the miner did not write: a misaligned, NaN or out-of-range answer is refused
with a clear error (reported on ``miner.errors``) instead of being sent as a broken submission.

    scores = checked_scores(scorer.score(batch), batch, scorer)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from miner.errors import ScorerError
from miner.scorer import Scorer
from miner.scoring import BatchScores
from streams.batch import Batch


def _check_entities(kind: str, ids: list[str], scores: np.ndarray, known: set[str]) -> None:
    if len(ids) != scores.size:
        msg = f"scorer returned {len(ids)} {kind} ids but {scores.size} scores"
        raise ScorerError(msg)
    if len(set(ids)) != len(ids):
        msg = f"scorer returned {len(ids) - len(set(ids))} duplicate {kind} ids"
        raise ScorerError(msg)
    unknown = [i for i in ids if i not in known]
    if unknown:
        msg = f"scorer returned {len(unknown)} {kind} ids that are not in the batch (first: {unknown[0]!r})"
        raise ScorerError(msg)
    bad = ~np.isfinite(scores) | (scores < 0.0) | (scores > 1.0)
    if bad.any():
        msg = f"scorer returned {int(bad.sum())} {kind} scores that are NaN, infinite or outside [0, 1]"
        raise ScorerError(msg)


def checked_scores(scores: BatchScores, batch: Batch, scorer: Scorer) -> BatchScores:
    """``scores`` as float64 arrays with model versions filled in; ``ScorerError`` if they break the contract."""
    alert_ids = [str(i) for i in scores.alert_ids]
    cluster_ids = [str(i) for i in scores.cluster_ids]
    alert_scores = np.asarray(scores.alert_scores, dtype=np.float64).reshape(-1)
    cluster_scores = np.asarray(scores.cluster_scores, dtype=np.float64).reshape(-1)
    _check_entities("alert", alert_ids, alert_scores, set(batch.alerts["alert_id"].to_pylist()))
    _check_entities("cluster", cluster_ids, cluster_scores, set(batch.clusters["cluster_id"].to_pylist()))
    ranks = None
    if scores.alert_ranks is not None:
        ranks = np.asarray(scores.alert_ranks, dtype=np.int64).reshape(-1)
        if ranks.size != len(alert_ids) or not np.array_equal(np.sort(ranks), np.arange(1, len(alert_ids) + 1)):
            msg = "scorer returned ranks that are not a permutation of 1..N over its alerts"
            raise ScorerError(msg)
    versions = dict(scores.model_versions) or {"alert_scorer": scorer.version, "cluster_scorer": scorer.version}
    return replace(
        scores,
        alert_ids=alert_ids,
        alert_scores=alert_scores,
        cluster_ids=cluster_ids,
        cluster_scores=cluster_scores,
        model_versions=versions,
        alert_ranks=ranks,
    )
