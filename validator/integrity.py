"""Tier 1: integrity of one miner's submission for one date (0-0.2), from counted facts.

The facts are counted as records stream in (resubmissions, determinism, dead letters, late
records) and when the round closes (completeness, ranges, checksum); this module only judges.

    verdict = assess_integrity(facts, min_completeness=0.95, max_latency_s=3600)
    verdict.passed, verdict.score, verdict.reasons
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_SCORE = 0.2
_PART = MAX_SCORE / 5  # schema, completeness, range, latency, determinism


@dataclass(frozen=True, slots=True)
class SubmissionFacts:
    """What was observed of one miner's submission for one date."""

    completed: bool
    batch_size: int
    scored_known: int  # distinct batch alerts with a score
    unknown_ids: int  # ids that are not in the batch
    duplicate_ids: int  # alert ids scored in more than one chunk
    out_of_range: int  # scores outside [0, 1] or not finite
    total_scores: int
    latency_s: float | None  # completion (or last chunk) minus batch publication
    determinism_violations: int = 0
    dead_letters: int = 0
    checksum_ok: bool | None = None  # None: no completion marker to check against
    counts_ok: bool | None = None
    late_records: int = 0
    resubmissions: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """A tier's score, whether it disqualifies the miner, why, and the figures behind it."""

    score: float
    passed: bool
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def assess_integrity(
    facts: SubmissionFacts, *, min_completeness: float, max_latency_s: float, on_time_s: float = 0.0
) -> Verdict:
    reasons: list[str] = []
    completeness = facts.scored_known / facts.batch_size if facts.batch_size else 0.0
    in_range = 1.0 - facts.out_of_range / facts.total_scores if facts.total_scores else 0.0
    schema_problems = facts.dead_letters + facts.unknown_ids + facts.duplicate_ids
    schema = 1.0 if schema_problems == 0 and facts.checksum_ok is not False and facts.counts_ok is not False else 0.0
    if facts.latency_s is None or facts.late_records:
        latency = 0.0
    else:
        # full points within on_time_s, so seconds of jitter never move weights (replays stay identical)
        late_by = max(0.0, facts.latency_s - on_time_s)
        latency = min(1.0, max(0.0, 1.0 - late_by / max(max_latency_s - on_time_s, 1e-9)))
    determinism = 1.0 if facts.determinism_violations == 0 else 0.0

    if not facts.completed:
        reasons.append("integrity: no submission-complete marker before the ensemble")
    if facts.total_scores == 0:
        reasons.append("integrity: no scores received")
    elif completeness < min_completeness:
        reasons.append(f"integrity: completeness {completeness:.3f} below {min_completeness:.3f}")
    if facts.out_of_range:
        reasons.append(f"integrity: {facts.out_of_range} scores outside [0, 1]")
    if facts.determinism_violations:
        reasons.append(
            f"integrity: {facts.determinism_violations} resubmitted chunks changed scores under the same model version"
        )
    if facts.checksum_ok is False:
        reasons.append("integrity: checksum of received scores does not match the completion marker")
    if facts.counts_ok is False:
        reasons.append("integrity: counts of received scores or chunks do not match the completion marker")
    if facts.unknown_ids:
        reasons.append(f"integrity: {facts.unknown_ids} scored ids are not in the batch")
    if facts.duplicate_ids:
        reasons.append(f"integrity: {facts.duplicate_ids} alerts scored in more than one chunk")
    if facts.dead_letters:
        reasons.append(f"integrity: {facts.dead_letters} records did not decode (dead-lettered)")
    if facts.late_records:
        reasons.append(f"integrity: {facts.late_records} records arrived after the ensemble was emitted")

    passed = (
        facts.completed
        and facts.total_scores > 0
        and completeness >= min_completeness
        and facts.out_of_range == 0
        and facts.determinism_violations == 0
        and facts.checksum_ok is not False
    )
    score = _PART * (schema + completeness + in_range + latency + determinism)
    metrics = {
        "completeness": completeness,
        "in_range": in_range,
        "latency_s": -1.0 if facts.latency_s is None else facts.latency_s,
        "unknown_ids": float(facts.unknown_ids),
        "duplicate_ids": float(facts.duplicate_ids),
        "dead_letters": float(facts.dead_letters),
        "determinism_violations": float(facts.determinism_violations),
        "late_records": float(facts.late_records),
        "resubmissions": float(facts.resubmissions),
    }
    return Verdict(min(MAX_SCORE, score), passed, reasons, metrics)
