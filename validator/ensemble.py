"""Ensemble maths over one date: miner weights and per-entity scores, vectorised with numpy.

Inputs are a score matrix (miners x entities, NaN where a miner gave no score) and one weight
per miner; nothing here knows about Kafka or tables.

    w = combine_weights(priors, immediate, eligible, min_weight=0.01, temperature=0.03)
    out = ensemble_scores(matrix, w, entity_ids, top_k=3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from streams import submission

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

AGREEMENT_BAND = 0.1


def moving_average(history: Sequence[float], alpha: float, default: float) -> float:
    """Exponential moving average of final scores, oldest first; ``default`` with no history."""
    if not history:
        return default
    value = float(history[0])
    for score in history[1:]:
        value = alpha * float(score) + (1.0 - alpha) * value
    return value


def combine_weights(
    priors: Floats, immediate: Floats, eligible: Bools, *, min_weight: float, temperature: float
) -> Floats:
    """exp((prior - best prior) / temperature) x immediate over eligible miners, normalised to 1,
    weights under ``min_weight`` dropped.

    A softmax of the priors: a lead of ``temperature`` in prior multiplies a miner's weight by e
    against another's, whatever the priors' level, so weights follow ground truth as sharply as
    the temperature says. All zeros when no eligible miner has a positive immediate score.
    """
    if not eligible.any():
        return np.zeros(len(priors), dtype=np.float64)
    lead = priors - priors[eligible].max()  # <= 0 for every eligible miner: exp never overflows
    sharp = np.exp(np.where(eligible, lead, 0.0) / temperature)
    raw = np.where(eligible, sharp * np.clip(immediate, 0.0, None), 0.0).astype(np.float64)
    total = raw.sum()
    if total <= 0.0:
        return np.zeros_like(raw)
    weights = raw / total
    kept = np.where(weights >= min_weight, weights, 0.0)
    if kept.sum() <= 0.0:  # every weight is tiny (hundreds of miners): keep them rather than none
        kept = weights
    result: Floats = kept / kept.sum()
    return result


@dataclass(frozen=True, slots=True)
class EnsembleScores:
    """Per-entity results, aligned with the entity ids given to ``ensemble_scores``.

    ``top_rows[j, e]`` is the miner row of entity ``e``'s ``j``-th top contributor (-1: none).
    """

    score: Floats
    confidence: Floats
    miner_count: Ints
    agreement: Floats
    std: Floats
    rank: Ints
    top_rows: Ints
    top_weights: Floats
    top_scores: Floats

    @property
    def contributors(self) -> list[list[tuple[int, float, float]]]:
        """Per entity: (miner row, weight, score) of its top contributors, best first."""
        rows, weights, scores = self.top_rows.T.tolist(), self.top_weights.T.tolist(), self.top_scores.T.tolist()
        return [
            [(r, w, s) for r, w, s in zip(rs, ws, ss, strict=True) if r >= 0]
            for rs, ws, ss in zip(rows, weights, scores, strict=True)
        ]


def rank_by_score(scores: Floats, ids: Sequence[str]) -> Ints:
    """1-based rank by score descending, ties broken by id ascending (the submission contract's rule)."""
    return submission.rank_by_score(ids, scores)


def ensemble_scores(matrix: Floats, weights: Floats, entity_ids: Sequence[str], *, top_k: int) -> EnsembleScores:
    """Weighted score per entity over the miners that scored it (weights renormalised per entity)."""
    n_miners, n_entities = matrix.shape
    present = ~np.isnan(matrix) & (weights > 0.0)[:, None]
    w = np.where(present, weights[:, None], 0.0)
    s = np.where(present, matrix, 0.0)
    wsum = w.sum(axis=0)
    has = wsum > 0.0
    safe = np.where(has, wsum, 1.0)
    score = np.where(has, (w * s).sum(axis=0) / safe, 0.0)
    score = np.clip(score, 0.0, 1.0)
    var = np.where(has, (w * (s - score) ** 2).sum(axis=0) / safe, 0.0)
    std = np.sqrt(np.clip(var, 0.0, None))
    count = present.sum(axis=0).astype(np.int64)
    near = present & (np.abs(s - score) <= AGREEMENT_BAND + 1e-12)
    agreement = np.where(count > 0, near.sum(axis=0) / np.maximum(count, 1), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(score > 0.0, std / np.where(score > 0.0, score, 1.0), np.where(std > 0.0, 1.0, 0.0))
    confidence = np.where(count > 0, np.clip(1.0 - ratio, 0.0, 1.0), 0.0)
    rank = rank_by_score(score, entity_ids)
    # top contributors: the same global order of miners (weight desc, row asc) for every entity
    order = np.array(sorted(range(n_miners), key=lambda i: (-float(weights[i]), i)), dtype=np.int64)
    top_rows = np.full((top_k, n_entities), -1, dtype=np.int64)
    if n_miners and n_entities:
        ordered_present = present[order]
        slot = np.cumsum(ordered_present, axis=0) - 1
        chosen = ordered_present & (slot < top_k)
        position, entity = np.nonzero(chosen)
        top_rows[slot[position, entity], entity] = order[position]
    found = top_rows >= 0
    safe_rows = np.where(found, top_rows, 0)
    top_weights = np.where(found, weights[safe_rows] if n_miners else 0.0, 0.0)
    columns = np.broadcast_to(np.arange(n_entities), top_rows.shape)
    top_scores = np.where(found, matrix[safe_rows, columns] if n_miners else 0.0, 0.0)
    return EnsembleScores(score, confidence, count, agreement, std, rank, top_rows, top_weights, top_scores)
