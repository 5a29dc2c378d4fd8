"""Originality of each submission against the earlier ones of the same date, by trusted order.

Three figures per miner, all on centred ranks (so a monotone transform of someone else's scores
looks exactly like them):

- the highest rank correlation (Spearman) with any earlier submission: at or above
  ``rank_corr`` the miner is a copy of that one (a noisy or transformed copy);
- the share of its rank variance that a least-squares blend of every earlier submission explains
  (R^2): at or above ``max_explained`` it is a copy of that blend;
- its contribution: what it adds beyond the earlier submissions, ``1 - R^2`` scaled so that
  ``free_explained`` (what two honest models with different features share) costs nothing; the
  ensemble weight is multiplied by it, so a copy adds nothing even below the thresholds.

The first submitter is compared with no one: by trusted order, the later one is the copy.

    found = judge_originality(matrix, miner_ids, submitted_at, usable, thresholds)
    found[i].copy_of, found[i].reason, found[i].contribution
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
MIN_OVERLAP = 10  # alerts two submissions must share before they are compared
ROWS_PER_REGRESSOR = 5  # alerts needed per earlier submission before the blend is fitted


@dataclass(frozen=True, slots=True)
class OriginalityThresholds:
    rank_corr: float = 0.9
    max_explained: float = 0.9
    free_explained: float = 0.5


@dataclass(frozen=True, slots=True)
class Originality:
    """One miner's originality: whom it copies (if anyone), why, and the figures behind it."""

    copy_of: str | None
    reason: str | None
    max_rank_corr: float
    explained: float
    contribution: float


def centred_ranks(values: Floats) -> Floats:
    """Ranks (ties averaged) scaled to [-0.5, 0.5]; NaN stays NaN."""
    out = np.full(len(values), np.nan)
    scored = ~np.isnan(values)
    n = int(scored.sum())
    if n == 0:
        return out
    x = values[scored]
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.arange(n, dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    averaged = (np.bincount(inverse, weights=ranks) / counts)[inverse]
    out[scored] = (averaged + 0.5) / n - 0.5
    return out


def _corr(a: Floats, b: Floats) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 1e-12 else 0.0


def explained_share(target: Floats, regressors: Floats) -> float:
    """R^2 of a least-squares fit (with intercept) of ``target`` on the columns of ``regressors``."""
    centred = target - target.mean()
    total = float((centred * centred).sum())
    if total <= 1e-12 or regressors.shape[1] == 0:
        return 0.0
    design = np.column_stack([np.ones(len(target)), regressors])
    coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coefficients
    return float(np.clip(1.0 - float((residual * residual).sum()) / total, 0.0, 1.0))


def judge_originality(
    matrix: Floats,
    miner_ids: Sequence[str],
    submitted_at: Sequence[float],
    usable: Bools,
    thresholds: OriginalityThresholds,
) -> list[Originality]:
    """One verdict per row; ``usable`` rows (scored, not constant) are the ones later rows are compared with."""
    ranks = np.vstack([centred_ranks(row) for row in matrix]) if len(matrix) else matrix
    order = sorted(range(len(miner_ids)), key=lambda i: (submitted_at[i], miner_ids[i]))
    found: dict[int, Originality] = {}
    earlier: list[int] = []
    for i in order:
        row = ranks[i]
        best, best_corr = None, 0.0
        for j in earlier:
            both = ~np.isnan(row) & ~np.isnan(ranks[j])
            if both.sum() < MIN_OVERLAP:
                continue
            corr = _corr(row[both], ranks[j][both])
            if corr > best_corr:
                best, best_corr = j, corr
        explained = 0.0
        if earlier:
            common = ~np.isnan(row) & ~np.isnan(ranks[earlier]).any(axis=0)
            if common.sum() >= max(MIN_OVERLAP, ROWS_PER_REGRESSOR * (len(earlier) + 1)):
                explained = explained_share(row[common], ranks[earlier][:, common].T)
        copy_of, reason = None, None
        if best is not None and best_corr >= thresholds.rank_corr:
            copy_of = miner_ids[best]
            reason = (
                f"plagiarism: rank correlation {best_corr:.3f} with {copy_of}, which submitted earlier "
                f"(threshold {thresholds.rank_corr:.2f})"
            )
        elif len(earlier) >= 2 and explained >= thresholds.max_explained:
            copy_of = "+".join(miner_ids[j] for j in earlier)
            reason = (
                f"plagiarism: a blend of earlier submissions ({', '.join(miner_ids[j] for j in earlier)}) "
                f"explains {explained:.3f} of its ranks (threshold {thresholds.max_explained:.2f})"
            )
        free = min(thresholds.free_explained, 0.999)
        contribution = float(np.clip((1.0 - explained) / (1.0 - free), 0.0, 1.0))
        found[i] = Originality(copy_of, reason, best_corr, explained, contribution)
        if usable[i]:
            earlier.append(i)
    return [found[i] for i in range(len(miner_ids))]
