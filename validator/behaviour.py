"""Tier 2: behaviour of each miner against the others on one date (0-0.3).

Traps (alerts with known answers, judged by the percentile a miner put them at), plagiarism
(near-identical score vectors to another miner, the later submitter being the copier, or to an
ensemble already emitted for the same alerts), gaming (constant, degenerate or random-looking
scores) and consistency (ranks agree with scores). Copiers and gamers are disqualified from the
ensemble.

    verdicts = assess_behaviour(matrix, ranks, miner_ids, submitted_at, traps, thresholds, previous)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from validator.ground_truth import auc_roc
from validator.integrity import Verdict
from validator.originality import OriginalityThresholds, judge_originality

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
MAX_SCORE = 0.3
MIN_OVERLAP = 10  # alerts two miners must share before they are compared


@dataclass(frozen=True, slots=True)
class Thresholds:
    plagiarism_corr: float = 0.995
    plagiarism_mad: float = 0.02
    random_corr: float = 0.1
    originality: OriginalityThresholds = OriginalityThresholds()


@dataclass(frozen=True, slots=True)
class Traps:
    positions: Ints  # columns of the score matrix
    expected: Floats  # 0/1


def _ranks(values: Floats) -> Floats:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    # average ties so a constant vector has no rank structure
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    averaged: Floats = (sums / counts)[inverse]
    return averaged


def pearson(a: Floats, b: Floats) -> float:
    if len(a) < 2:
        return 0.0
    sa, sb = a.std(), b.std()
    if sa < 1e-12 or sb < 1e-12:
        return 0.0
    return float(np.clip(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb), -1.0, 1.0))


def spearman(a: Floats, b: Floats) -> float:
    return pearson(_ranks(a), _ranks(b)) if len(a) >= 2 else 0.0


def trap_accuracy(scores: Floats, traps: Traps) -> float | None:
    """How well the miner ordered the traps: AUC-ROC over them (unscored traps count as 0).

    With traps of one class only, the share on the right side of the miner's median.
    """
    if not (~np.isnan(scores)).any() or len(traps.positions) == 0:
        return None
    trap_scores = np.nan_to_num(scores[traps.positions], nan=0.0)
    expected = traps.expected > 0.5
    if expected.all() or not expected.any():
        median = float(np.nanmedian(scores))
        right = np.where(expected, trap_scores > median, trap_scores <= median)
        return float(right.mean())
    return auc_roc(trap_scores, traps.expected)


def find_copies(
    matrix: Floats, miner_ids: Sequence[str], submitted_at: Sequence[float], thresholds: Thresholds
) -> dict[int, int]:
    """copier row -> original row, for pairs whose scores are near-identical; later submitter copies."""
    copies: dict[int, int] = {}
    n = len(miner_ids)
    for i in range(n):
        for j in range(i + 1, n):
            both = ~np.isnan(matrix[i]) & ~np.isnan(matrix[j])
            if both.sum() < MIN_OVERLAP:
                continue
            a, b = matrix[i, both], matrix[j, both]
            if a.std() < 1e-9 and b.std() < 1e-9:
                continue  # two constants are gaming, judged there, not copies of each other
            if _near_identical(a, b, thresholds):
                later, earlier = (j, i) if (submitted_at[j], miner_ids[j]) > (submitted_at[i], miner_ids[i]) else (i, j)
                copies.setdefault(later, earlier)
    return copies


@dataclass(frozen=True, slots=True)
class PreviousEnsemble:
    """An ensemble already emitted for the same alerts (aligned with the matrix columns, NaN: none).

    ``weights`` are each miner row's weight in it (0 for miners it did not use).
    """

    version: int
    scores: Floats
    weights: Floats


def _near_identical(a: Floats, b: Floats, thresholds: Thresholds) -> bool:
    close = float(np.abs(a - b).mean()) < thresholds.plagiarism_mad
    return close and pearson(a, b) >= thresholds.plagiarism_corr


def copies_of_ensemble(matrix: Floats, previous: PreviousEnsemble, thresholds: Thresholds) -> set[int]:
    """Rows near-identical to an ensemble already emitted: they copied it (it came first).

    A miner that had weight in that ensemble is never compared with it: the ensemble was built
    partly from its own scores, so re-sending them (a replay, a re-scored batch) or being a blend
    that the ensemble resembles says nothing about copying. Miners it did not use are.
    """
    copies: set[int] = set()
    for i in range(matrix.shape[0]):
        own = float(previous.weights[i]) if i < len(previous.weights) else 0.0
        if own > 0.0:
            continue
        row = matrix[i]
        both = ~np.isnan(row) & ~np.isnan(previous.scores)
        if both.sum() < MIN_OVERLAP:
            continue
        x, rest = row[both], previous.scores[both]
        if x.std() < 1e-9 and rest.std() < 1e-9:
            continue  # constants are gaming, judged there
        if _near_identical(x, rest, thresholds):
            copies.add(i)
    return copies


def gaming_reason(scores: Floats) -> str | None:
    """Why a score vector looks gamed without reference to others (constant or degenerate)."""
    valid = scores[~np.isnan(scores)]
    if len(valid) < MIN_OVERLAP:
        return None
    if valid.std() < 1e-6:
        return f"gaming: constant scores ({float(valid[0]):.4f})"
    distinct, counts = np.unique(valid, return_counts=True)
    if len(distinct) <= 2 or counts.max() / len(valid) > 0.9:
        return f"gaming: degenerate scores ({len(distinct)} distinct values)"
    return None


def assess_behaviour(
    matrix: Floats,
    ranks: Floats,
    miner_ids: Sequence[str],
    submitted_at: Sequence[float],
    traps: Traps | None,
    thresholds: Thresholds,
    previous: PreviousEnsemble | None = None,
) -> list[Verdict]:
    """One verdict per miner row; ``passed`` False means disqualified from the ensemble."""
    n = len(miner_ids)
    copies = find_copies(matrix, miner_ids, submitted_at, thresholds)
    copied_ensemble = copies_of_ensemble(matrix, previous, thresholds) if previous is not None else set()
    gamed = [gaming_reason(matrix[i]) for i in range(n)]
    comparable = np.array([gamed[i] is None and bool((~np.isnan(matrix[i])).any()) for i in range(n)], dtype=bool)
    original = judge_originality(matrix, miner_ids, submitted_at, comparable, thresholds.originality)
    unoriginal = {i for i in range(n) if original[i].copy_of is not None and i not in copies}
    # consensus: median of the miners that are neither constant/degenerate nor copies
    usable = [
        i for i in range(n) if comparable[i] and i not in copies and i not in copied_ensemble and i not in unoriginal
    ]
    verdicts = []
    for i in range(n):
        reasons: list[str] = []
        metrics: dict[str, float] = {}
        row = matrix[i]
        scored = ~np.isnan(row)
        disqualified = False
        if i in copies:
            reasons.append(f"plagiarism: near-identical to {miner_ids[copies[i]]}, which submitted earlier")
            disqualified = True
        if i in unoriginal:
            reasons.append(str(original[i].reason))
            disqualified = True
        metrics["max_rank_corr_earlier"] = original[i].max_rank_corr
        metrics["explained_by_earlier"] = original[i].explained
        metrics["contribution"] = original[i].contribution
        if i in copied_ensemble and previous is not None:
            reasons.append(f"plagiarism: near-identical to ensemble version {previous.version}, already emitted")
            disqualified = True
        if gamed[i] is not None:
            reasons.append(str(gamed[i]))
            disqualified = True
        others = [j for j in usable if j != i and copies.get(j) != i]
        consensus_corr = None
        if len(others) >= 2 and gamed[i] is None and scored.sum() >= MIN_OVERLAP:
            with np.errstate(all="ignore"):
                consensus = np.nanmedian(matrix[others], axis=0) if scored.any() else row
            both = scored & ~np.isnan(consensus)
            if both.sum() >= MIN_OVERLAP:
                consensus_corr = spearman(row[both], consensus[both])
                metrics["consensus_corr"] = consensus_corr
                if consensus_corr < thresholds.random_corr:
                    reasons.append(
                        f"gaming: random-looking scores (rank correlation {consensus_corr:.3f} with consensus)"
                    )
                    disqualified = True
        trap = trap_accuracy(row, traps) if traps is not None else None
        if trap is not None:
            metrics["trap_accuracy"] = trap
            if trap < 0.7:
                reasons.append(f"traps: ordered trap alerts at AUC {trap:.2f}")
        both_rank = scored & ~np.isnan(ranks[i])
        consistency = max(0.0, spearman(row[both_rank], -ranks[i][both_rank])) if both_rank.sum() >= 2 else 0.0
        metrics["rank_consistency"] = consistency
        if both_rank.sum() >= 2 and consistency < 0.8:
            reasons.append(f"consistency: ranks agree with scores at {consistency:.2f}")
        parts = {
            "plagiarism": 0.0 if i in copies or i in copied_ensemble or i in unoriginal else 1.0,
            "gaming": 0.0
            if (gamed[i] is not None or (consensus_corr is not None and consensus_corr < thresholds.random_corr))
            else 1.0,
            "consistency": consistency,
        }
        shares = {"plagiarism": 0.1, "gaming": 0.05, "consistency": 0.05}
        if trap is not None:
            parts["traps"] = max(0.0, (trap - 0.5) / 0.5)
            shares["traps"] = 0.1
        total_share = sum(shares.values())
        score = MAX_SCORE * sum(parts[k] * shares[k] for k in shares) / total_share
        if not scored.any():
            score = 0.0
        verdicts.append(Verdict(min(MAX_SCORE, score), not disqualified, reasons, metrics))
    return verdicts
