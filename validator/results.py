"""The verdict records a round emits, built in one place: immediate and ground-truth results, the batch record.

Pure over a ``RoundOutcome``; the bodies follow ``validation_result.avsc`` and ``ensemble_batch.avsc``.

    for key, record in immediate_results(outcome, network, date, version): ...
    batch = batch_record(outcome, contents, network=..., date=..., version=2, trigger="replay", ...)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from validator.batches import BatchContents
from validator.outcome import ENSEMBLE_ID, GroundTruth, RoundOutcome

AGGREGATION_METHOD = "weighted_mean(softmax(tier3_ema / T) x immediate x contribution)"


def result_key(date: dt.date, miner_id: str) -> str:
    """Key of a ValidationResult on ``validator.results``."""
    return f"{date.isoformat()}:{miner_id}"


def immediate_results(
    outcome: RoundOutcome, network: str, date: dt.date, version: int
) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for row, miner in enumerate(outcome.miners):
        metrics = {**outcome.integrity[row].metrics, **outcome.behaviour[row].metrics}
        out.append(
            (
                result_key(date, miner),
                {
                    "network": network,
                    "processing_date": date,
                    "miner_id": miner,
                    "stage": "immediate",
                    "integrity_score": float(outcome.integrity[row].score),
                    "behaviour_score": float(outcome.behaviour[row].score),
                    "ground_truth_score": None,
                    "immediate_score": float(outcome.immediate[row]),
                    "final_score": None,
                    "weight": float(outcome.weights[row]),
                    "passed_integrity": bool(outcome.integrity[row].passed),
                    "reasons": outcome.reasons[row],
                    "metrics": {k: float(v) for k, v in sorted(metrics.items())},
                    "version": version,
                },
            )
        )
    return out


def _batch_fields(
    network: str, date: dt.date, window_days: int, batch_id: str, version: int, trigger: str, expected: Sequence[str]
) -> dict[str, Any]:
    """What every EnsembleBatch record says of its round, accepted or rejected."""
    return {
        "network": network,
        "processing_date": date,
        "window_days": window_days,
        "batch_id": batch_id,
        "version": version,
        "aggregation_method": AGGREGATION_METHOD,
        "trigger": trigger,
        "expected_miners": sorted(expected),
    }


def batch_record(
    outcome: RoundOutcome,
    contents: BatchContents,
    *,
    network: str,
    date: dt.date,
    window_days: int,
    batch_id: str,
    version: int,
    trigger: str,
    expected: Sequence[str],
    deadline_ms: int,
    priors: str = "history",
    keys: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The EnsembleBatch record; ``aggregated_at`` is the deadline or the latest completion used.

    ``keys`` are the public keys the miners are bound to (the hotkeys a subnet sets their weights for).
    """
    completions = [t for t, c in zip(outcome.completed_at_ms, outcome.completed, strict=True) if c]
    aggregated_at = deadline_ms if trigger == "deadline" or not completions else max(completions)
    return {
        **_batch_fields(network, date, window_days, batch_id, version, trigger, expected),
        "alert_count": len(contents.alert_ids),
        "cluster_count": len(contents.cluster_ids),
        "miners": [
            {
                "miner_id": miner,
                "weight": float(outcome.weights[row]),
                "immediate_score": float(outcome.immediate[row]),
                "completed": bool(outcome.completed[row]),
            }
            for row, miner in enumerate(outcome.miners)
        ],
        "aggregated_at": dt.datetime.fromtimestamp(aggregated_at / 1000, tz=dt.UTC),
        "status": "accepted",
        "reason": "",
        "miner_keys": {m: keys[m] for m in outcome.miners if keys and keys.get(m)},
        "priors": priors,
    }


def ground_truth_results(
    outcome: RoundOutcome, truth: GroundTruth, stored: Mapping[str, Mapping[str, Any]]
) -> list[tuple[str, dict[str, Any]]]:
    """Per miner (immediate figures as emitted, from ``stored``) and for the ensemble: the tier-3 bodies."""
    results = []
    for row, miner in enumerate(outcome.miners):
        kept = stored.get(miner, {})
        immediate = float(kept.get("immediate", outcome.immediate[row]))
        credited = bool(kept.get("eligible", outcome.eligible(row)))
        gt = truth.miner_scores[miner] if credited else 0.0
        reasons = list(kept.get("reasons", outcome.reasons[row]))
        if not credited:
            reasons.append("ground truth: no credit, the submission was not valid (integrity or behaviour)")
        results.append(
            (
                miner,
                {
                    "integrity_score": float(kept.get("integrity", outcome.integrity[row].score)),
                    "behaviour_score": float(kept.get("behaviour", outcome.behaviour[row].score)),
                    "ground_truth_score": gt,
                    "immediate_score": immediate,
                    "final_score": immediate + gt if credited else 0.0,
                    "weight": float(kept.get("weight", outcome.weights[row])),
                    "passed_integrity": bool(kept.get("passed", outcome.integrity[row].passed)),
                    "reasons": reasons,
                    "metrics": dict(sorted(truth.miner_metrics[miner].items())),
                },
            )
        )
    results.append(
        (
            ENSEMBLE_ID,
            {
                "integrity_score": 0.0,
                "behaviour_score": 0.0,
                "ground_truth_score": truth.ensemble_score,
                "immediate_score": 0.0,
                "final_score": truth.ensemble_score,
                "weight": 1.0,
                "passed_integrity": True,
                "reasons": [],
                "metrics": dict(sorted(truth.ensemble_metrics.items())),
            },
        )
    )
    return results


def ground_truth_records(
    results: Sequence[tuple[str, Mapping[str, Any]]], network: str, date: dt.date, version: int
) -> list[tuple[str, dict[str, Any]]]:
    """The ``ground_truth`` stage ValidationResult of every body ``ground_truth_results`` gave."""
    return [
        (
            result_key(date, miner),
            {
                "network": network,
                "processing_date": date,
                "miner_id": miner,
                "stage": "ground_truth",
                "version": version,
                **body,
            },
        )
        for miner, body in results
    ]


def stored_verdicts(outcome: RoundOutcome, version: int) -> dict[str, dict[str, Any]]:
    """Per miner: the immediate figures kept in the ``results`` table (ground truth reuses them)."""
    return {
        miner: {
            "integrity": float(outcome.integrity[row].score),
            "behaviour": float(outcome.behaviour[row].score),
            "immediate": float(outcome.immediate[row]),
            "weight": float(outcome.weights[row]),
            "passed": bool(outcome.integrity[row].passed),
            "eligible": outcome.eligible(row),
            "reasons": outcome.reasons[row],
            "version": version,
        }
        for row, miner in enumerate(outcome.miners)
    }


def rejected_batch_record(
    *,
    network: str,
    date: dt.date,
    window_days: int,
    batch_id: str,
    version: int,
    trigger: str,
    expected: Sequence[str],
    deadline_ms: int,
    reason: str,
) -> dict[str, Any]:
    """The EnsembleBatch record of a batch that failed verification: no alerts, no miners judged."""
    return {
        **_batch_fields(network, date, window_days, batch_id, version, trigger, expected),
        "alert_count": 0,
        "cluster_count": 0,
        "miners": [],
        "aggregated_at": dt.datetime.fromtimestamp(deadline_ms / 1000, tz=dt.UTC),
        "status": "rejected",
        "reason": reason[:2000],
        "priors": "history",
    }
