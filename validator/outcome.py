"""A round's outcome: verdicts, weights and ensemble from its stored state, and the Avro records.

Pure over plain values: the caller gives the batch contents, the decoded submissions, the
counted facts and the miners' score history; nothing here touches Kafka or tables.

    outcome = evaluate_round(inputs, settings)
    records = ensemble_records(outcome, network, date, version)
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.errors import SubmissionError
from streams.signing import TIE_DRAW, Signer, canonical_bytes
from streams.submission import submission_checksum
from validator.batches import BatchContents, Labels
from validator.behaviour import PreviousEnsemble, Thresholds, Traps, assess_behaviour
from validator.ensemble import EnsembleScores, combine_weights, ensemble_scores, moving_average
from validator.ground_truth import auc_pr, ground_truth_metrics, ground_truth_score
from validator.integrity import SubmissionFacts, Verdict, assess_integrity
from validator.originality import OriginalityThresholds
from validator.settings import ValidatorSettings
from validator.submissions import Submission, align, placement
from validator.tables import StoredEnsemble

Floats = npt.NDArray[np.float64]
ENSEMBLE_ID = "ensemble"


@dataclass(frozen=True, slots=True)
class MinerFacts:
    """Counted as records arrived (from the stats table) for one miner."""

    marker: Mapping[str, Any] | None = None
    content_seen: Mapping[str, int] = field(default_factory=dict)  # chunk id -> trusted time of the kept chunk
    resubmissions: int = 0
    determinism_violations: int = 0
    late_records: int = 0
    dead_letters: int = 0


@dataclass(frozen=True, slots=True)
class RoundInputs:
    date: dt.date
    published_at_ms: int
    contents: BatchContents
    submissions: Mapping[str, Submission]
    facts: Mapping[str, MinerFacts]
    expected: Sequence[str]
    history: Mapping[str, Mapping[str, float]]  # miner -> {iso date: ground-truth (tier 3) score}
    fixed_weights: Mapping[str, float] | None = None  # the weights already emitted (ground truth)
    # the priors of the version a replay replays (exact replays); None: from ``history``
    priors: Mapping[str, float] | None = None
    previous: StoredEnsemble | None = None  # the last version emitted before this one, on the same alerts
    draw_seed: bytes = b""  # orders miners seen at the same instant (``tie_draw_seed``); b"": by id alone


@dataclass
class RoundOutcome:
    miners: list[str]
    completed: list[bool]
    completed_at_ms: list[int]
    integrity: list[Verdict]
    behaviour: list[Verdict]
    immediate: Floats
    weights: Floats
    alert_matrix: Floats
    cluster_matrix: Floats
    alerts: EnsembleScores
    clusters: EnsembleScores
    reasons: list[list[str]] = field(default_factory=list)
    priors: Floats = field(default_factory=lambda: np.zeros(0))  # per miner row: the prior its weight used

    def eligible(self, row: int) -> bool:
        """Passed integrity (complete, in range, checksum) and was not disqualified (copy, gaming)."""
        return bool(self.integrity[row].passed and self.behaviour[row].passed)


def trusted_completion(marker: Mapping[str, Any]) -> int:
    """When the validator saw this completion marker (what latency counts); ``produced_at`` only
    for state written before arrival times were kept."""
    return int(marker.get("seen_at", marker.get("produced_at", 0)))


def submitted_at(marker: Mapping[str, Any]) -> int:
    """When these scores were first seen for the date (trusted order: the later submitter is the copy)."""
    return int(marker.get("first_seen", trusted_completion(marker)))


def content_times(stats: Mapping[str, Any]) -> dict[str, int]:
    """Chunk id -> when its kept scores were first on the broker, from a miner's stats value."""
    return {str(cid): int(held[1]) for cid, held in dict(stats.get("content_seen") or {}).items()}


def content_time(facts: MinerFacts) -> float:
    """When a miner's scores reached the validator, as the mean trusted time of its chunks (0: unknown).

    A copy of a chunk can only be sent once the original is on the broker, so chunk by chunk the
    copier is seen later; its completion marker, in contrast, can race the original's marker
    (the bridge reads each miner's topic at its own pace).
    """
    times = list(facts.content_seen.values())
    return float(np.mean(times)) if times else 0.0


def tie_draw_seed(signer: Signer | None, date: dt.date) -> bytes:
    """The validator's own signature over the date: what orders miners its bridge saw at one instant.

    Ed25519 is deterministic, so every replay and every worker holding the key draws the same
    order; no miner can compute it or move its place in it (a claimed time could be backdated).
    """
    if signer is None:
        return b""
    return signer.sign(canonical_bytes(TIE_DRAW, signer.name, None, None, date=date, signed_at_ms=0))


def submission_order(
    miners: Sequence[str],
    first_seen: Sequence[int],
    content: Sequence[float] | None = None,
    draw_seed: bytes = b"",
) -> list[float]:
    """Each miner's place in the trusted order (0 = first; never submitted: infinity).

    By when the validator first saw the scores (``content``: the mean trusted time of the chunks,
    where known), then when it first saw the completion marker of those scores; miners seen at the
    same instant (forwarded in one bridge batch, e.g. after a restart) by a draw keyed by
    ``draw_seed``: the validator has no evidence of who came first, and a miner's own claim is
    not evidence.
    """
    seen = [float(c) or float(t) for c, t in zip(content or [0.0] * len(miners), first_seen, strict=True)]
    draw = [hashlib.sha256(draw_seed + b"\n" + m.encode()).digest() for m in miners]
    done = [i for i, t in enumerate(first_seen) if t]
    ranked = sorted(done, key=lambda i: (seen[i], first_seen[i], draw[i], miners[i]))
    place = [float("inf")] * len(miners)
    for position, i in enumerate(ranked):
        place[i] = float(position)
    return place


def _marker_int(marker: Mapping[str, Any], name: str) -> int:
    return int(marker.get(name, -1))


def _facts_of(
    sub: Submission | None, facts: MinerFacts, contents: BatchContents, published_ms: int
) -> tuple[SubmissionFacts, Floats, Floats, Floats]:
    scores = np.asarray(sub.alert_scores if sub else [], dtype=np.float64)
    where = placement(contents.alert_ids, sub.alert_ids if sub else [])
    alerts = where.place(scores)
    ranks = where.place(sub.alert_ranks if sub else [])
    clusters = align(contents.cluster_ids, sub.cluster_ids if sub else [], sub.cluster_scores if sub else [])
    cluster_scores = np.asarray(sub.cluster_scores if sub else [], dtype=np.float64)
    every = np.concatenate([scores, cluster_scores])
    out_of_range = int((~np.isfinite(every) | (every < 0.0) | (every > 1.0)).sum())
    marker = facts.marker
    checksum_ok = counts_ok = None
    finished_ms = 0  # without a marker there is no trusted completion time
    if marker is not None and sub is not None:
        try:
            checksum_ok = marker.get("checksum") == submission_checksum(
                sub.alert_ids, sub.alert_scores, sub.cluster_ids, sub.cluster_scores
            )
        except SubmissionError:  # a NaN or infinite score: no checksum can match
            checksum_ok = False
        counts_ok = (
            _marker_int(marker, "alert_count") == len(sub.alert_ids)
            and _marker_int(marker, "cluster_count") == len(sub.cluster_ids)
            and _marker_int(marker, "alert_chunks") == sub.alert_chunks
            and _marker_int(marker, "cluster_chunks") == sub.cluster_chunks
        )
    if marker is not None:
        finished_ms = trusted_completion(marker)
    latency = (finished_ms - published_ms) / 1000.0 if finished_ms else None
    result = SubmissionFacts(
        completed=marker is not None,
        batch_size=len(contents.alert_ids),
        scored_known=alerts.known,
        unknown_ids=alerts.unknown + clusters.unknown,
        duplicate_ids=alerts.duplicates + clusters.duplicates,
        out_of_range=out_of_range,
        total_scores=len(every),
        latency_s=None if latency is None else max(0.0, latency),
        determinism_violations=facts.determinism_violations,
        dead_letters=facts.dead_letters,
        checksum_ok=checksum_ok,
        counts_ok=counts_ok,
        late_records=facts.late_records,
        resubmissions=facts.resubmissions,
    )
    return result, alerts.values, ranks.values, clusters.values


def prior_of(history: Mapping[str, float] | None, before: dt.date, alpha: float, default: float) -> float:
    """Moving average of a miner's ground-truth (tier 3) scores of dates before ``before`` (oldest first)."""
    past = [float(v) for d, v in sorted((history or {}).items()) if d < before.isoformat()]
    return moving_average(past, alpha, default)


def evaluate_round(inputs: RoundInputs, settings: ValidatorSettings) -> RoundOutcome:
    contents = inputs.contents
    miners = sorted(set(inputs.expected) | set(inputs.submissions) | {m for m, f in inputs.facts.items() if f.marker})
    n_alerts, n_clusters = len(contents.alert_ids), len(contents.cluster_ids)
    a_matrix = np.full((len(miners), n_alerts), np.nan)
    r_matrix = np.full((len(miners), n_alerts), np.nan)
    c_matrix = np.full((len(miners), n_clusters), np.nan)
    integrity: list[Verdict] = []
    completed: list[bool] = []
    completed_at: list[int] = []
    for row, miner in enumerate(miners):
        sub = inputs.submissions.get(miner)
        facts = inputs.facts.get(miner, MinerFacts())
        counted, a_row, r_row, c_row = _facts_of(sub, facts, contents, inputs.published_at_ms)
        a_matrix[row], r_matrix[row], c_matrix[row] = a_row, r_row, c_row
        integrity.append(
            assess_integrity(
                counted,
                min_completeness=settings.min_completeness,
                max_latency_s=settings.max_latency_s,
                on_time_s=settings.on_time_s,
            )
        )
        completed.append(counted.completed)
        completed_at.append(submitted_at(facts.marker) if facts.marker else 0)
    traps = None
    if len(contents.trap_ids):
        pos = np.searchsorted(contents.alert_ids, contents.trap_ids)
        ok = (
            (pos < n_alerts) & (contents.alert_ids[np.minimum(pos, max(n_alerts - 1, 0))] == contents.trap_ids)
            if n_alerts
            else pos < 0
        )
        traps = Traps(pos[ok].astype(np.int64), contents.trap_labels[ok])
    thresholds = Thresholds(
        settings.plagiarism_corr,
        settings.plagiarism_mad,
        settings.random_corr,
        OriginalityThresholds(settings.originality_rank_corr, settings.originality_explained, settings.free_explained),
    )
    # a copier is the later submitter, by when the validator first saw its scores (never a sender's clock)
    facts_of = [inputs.facts.get(m, MinerFacts()) for m in miners]
    submitted = submission_order(miners, completed_at, [content_time(f) for f in facts_of], inputs.draw_seed)
    previous = None
    if inputs.previous is not None and len(inputs.previous.scores) == n_alerts:
        stored = inputs.previous
        weights_then = np.array([float(stored.weights.get(m, 0.0)) for m in miners], dtype=np.float64)
        previous = PreviousEnsemble(stored.version, stored.scores, weights_then)
    behaviour = assess_behaviour(a_matrix, r_matrix, miners, submitted, traps, thresholds, previous)
    immediate = np.array([i.score + b.score for i, b in zip(integrity, behaviour, strict=True)], dtype=np.float64)
    eligible = np.array([i.passed and b.passed for i, b in zip(integrity, behaviour, strict=True)], dtype=bool)
    if inputs.priors is not None:
        kept = inputs.priors
        priors = np.array([float(kept.get(m, settings.default_prior)) for m in miners], dtype=np.float64)
    else:
        priors = np.array(
            [
                prior_of(inputs.history.get(m), inputs.date, settings.weight_alpha, settings.default_prior)
                for m in miners
            ],
            dtype=np.float64,
        )
    if inputs.fixed_weights is not None:
        weights = np.array([float(inputs.fixed_weights.get(m, 0.0)) for m in miners], dtype=np.float64)
    else:
        # what a miner adds beyond the earlier submissions scales its weight: a copy adds nothing
        contribution = np.array([b.metrics.get("contribution", 1.0) for b in behaviour], dtype=np.float64)
        weights = combine_weights(
            priors,
            immediate * contribution,
            eligible,
            min_weight=settings.min_weight,
            temperature=settings.weight_temperature,
        )
    reasons: list[list[str]] = []
    for row in range(len(miners)):
        why = [*integrity[row].reasons, *behaviour[row].reasons]
        if not integrity[row].passed:
            why.append("weight: 0, failed integrity")
        elif not behaviour[row].passed:
            why.append("weight: 0, disqualified by behaviour")
        elif weights[row] == 0.0:
            why.append(f"weight: dropped, below {settings.min_weight}")
        reasons.append(why)
    alerts = ensemble_scores(a_matrix, weights, list(contents.alert_ids), top_k=settings.top_contributors)
    clusters = ensemble_scores(c_matrix, weights, list(contents.cluster_ids), top_k=settings.top_contributors)
    return RoundOutcome(
        miners,
        completed,
        completed_at,
        integrity,
        behaviour,
        immediate,
        weights,
        a_matrix,
        c_matrix,
        alerts,
        clusters,
        reasons,
        priors,
    )


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """Tier 3 of every miner and of the ensemble for one date."""

    miner_metrics: dict[str, dict[str, float]]
    miner_scores: dict[str, float]
    ensemble_metrics: dict[str, float]
    ensemble_score: float


def judge_ground_truth(
    outcome: RoundOutcome, contents: BatchContents, labels: Labels, *, k: int, top_k: int
) -> GroundTruth:
    """Per-miner and ensemble tier 3, plus each miner's contribution (ensemble AUC-PR drop without it).

    A miner that failed integrity, was disqualified (a copy, gaming) or sent nothing earns no
    tier-3 score for the date; its metrics are still computed, for the record.
    """
    n = len(contents.alert_ids)
    pos = (
        np.searchsorted(contents.alert_ids, labels.alert_ids) if n else np.zeros(len(labels.alert_ids), dtype=np.int64)
    )
    inside = pos < n
    match = np.zeros(len(pos), dtype=bool)
    match[inside] = contents.alert_ids[pos[inside]] == labels.alert_ids[inside]
    cols, y = pos[match], labels.alert_labels[match]
    ids = list(contents.alert_ids)

    def ensemble_auc_pr(weights: Floats) -> float:
        return auc_pr(ensemble_scores(outcome.alert_matrix, weights, ids, top_k=top_k).score[cols], y)

    ensemble = ground_truth_metrics(outcome.alerts.score[cols], y, k=k)
    if len(labels.cluster_ids) and len(contents.cluster_ids):
        cpos = np.searchsorted(contents.cluster_ids, labels.cluster_ids)
        cok = (cpos < len(contents.cluster_ids)) & (
            contents.cluster_ids[np.minimum(cpos, len(contents.cluster_ids) - 1)] == labels.cluster_ids
        )
        ensemble["cluster_auc_pr"] = auc_pr(outcome.clusters.score[cpos[cok]], labels.cluster_labels[cok])
    metrics: dict[str, dict[str, float]] = {}
    scores: dict[str, float] = {}
    for row, miner in enumerate(outcome.miners):
        own = np.nan_to_num(outcome.alert_matrix[row, cols], nan=0.0)  # unscored alerts count as 0
        m = ground_truth_metrics(own, y, k=k)
        if outcome.weights[row] > 0.0:
            without = outcome.weights.copy()
            without[row] = 0.0
            if without.sum() > 0.0:
                m["contribution_auc_pr"] = ensemble["auc_pr"] - ensemble_auc_pr(without / without.sum())
            else:
                m["contribution_auc_pr"] = ensemble["auc_pr"]
        else:
            m["contribution_auc_pr"] = 0.0
        metrics[miner] = m
        credited = outcome.eligible(row) and not np.isnan(outcome.alert_matrix[row]).all()
        scores[miner] = ground_truth_score(m) if credited else 0.0  # no credit without a valid submission
    return GroundTruth(metrics, scores, ensemble, ground_truth_score(ensemble))
