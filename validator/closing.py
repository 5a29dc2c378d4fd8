"""Closing a round from partials: the closer's inputs, and each partition's share of the ensemble.

The closer evaluates the merged partials once (``evaluate_round``: verdicts, originality, weights)
and shares the weights; every partition's worker then rebuilds the same score matrices from the
same partials, applies the shared weights (``ensemble_scores``, the function one worker uses) and
encodes and sends only its own alerts and clusters: those whose bucket ``b`` has ``b mod P`` equal
to its partition. Ranks are over the whole batch, so each worker scores every entity (numpy, a
small part of the cost) and encodes and sends its share (most of it).

    inputs = closing_inputs(rkey, state, contents, shares, expected, priors)
    outcome = evaluate_round(inputs, settings)                              # the closer, once
    miners, alerts, clusters = shared_ensemble(inputs, weights, top_k)      # every partition
    rows = share_of(contents.alert_ids, partition, partitions, buckets)
    payloads = encoder.encode(take(alerts, rows), miners, ids[rows], network, date, version)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from streams.records import RoundPartial
from streams.submission import buckets_of
from validator.batches import BatchContents
from validator.emitter import _after_deadline
from validator.ensemble import EnsembleScores, ensemble_scores
from validator.outcome import RoundInputs
from validator.partials import merge_partials
from validator.state import RoundState
from validator.submissions import align, placement
from validator.tables import RoundKey

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def closing_inputs(
    rkey: RoundKey,
    state: RoundState,
    contents: BatchContents,
    shares: Iterable[RoundPartial],
    expected: Sequence[str],
    priors: Mapping[str, float] | None = None,
    fixed_weights: Mapping[str, float] | None = None,
    late_versions: bool = False,
    draw_seed: bytes = b"",
) -> RoundInputs:
    """What one worker's ``Emitter.evaluate`` would pass ``evaluate_round`` for a first version.

    ``priors`` are those the close fixed (a miner it does not name: the default prior; None: from
    no history, which gives the same); ``fixed_weights`` those emitted (ground truth reuses them).
    """
    submissions, facts = merge_partials(shares)
    # a marker forwarded after a watermark past the deadline is late and not taken, as in ``Emitter.snapshot``
    facts = {
        m: dataclasses.replace(f, marker=None, late_records=f.late_records + 1)
        if f.marker and _after_deadline(dict(f.marker), state, late_versions)
        else f
        for m, f in facts.items()
    }
    miners = set(submissions) | set(facts) | set(expected)
    return RoundInputs(
        date=rkey.date,
        published_at_ms=state.opened_at or state.published_at,
        contents=contents,
        submissions=submissions,
        facts=facts,
        expected=list(expected),
        history={m: {} for m in miners},
        fixed_weights=dict(fixed_weights) if fixed_weights is not None else None,
        priors=dict(priors) if priors is not None else None,
        draw_seed=draw_seed,
    )


def round_miners(inputs: RoundInputs) -> list[str]:
    """The miner rows of the round, in ``evaluate_round``'s order."""
    marked = {m for m, f in inputs.facts.items() if f.marker}
    return sorted(set(inputs.expected) | set(inputs.submissions) | marked)


def score_matrices(inputs: RoundInputs) -> tuple[list[str], Floats, Floats]:
    """(miners, alert matrix, cluster matrix) exactly as ``evaluate_round`` places them."""
    contents = inputs.contents
    miners = round_miners(inputs)
    alerts = np.full((len(miners), len(contents.alert_ids)), np.nan)
    clusters = np.full((len(miners), len(contents.cluster_ids)), np.nan)
    for row, miner in enumerate(miners):
        sub = inputs.submissions.get(miner)
        scores = np.asarray(sub.alert_scores if sub else [], dtype=np.float64)
        alerts[row] = placement(contents.alert_ids, sub.alert_ids if sub else []).place(scores).values
        clusters[row] = align(
            contents.cluster_ids, sub.cluster_ids if sub else [], sub.cluster_scores if sub else []
        ).values
    return miners, alerts, clusters


def shared_ensemble(
    inputs: RoundInputs, weights: Mapping[str, float], top_k: int
) -> tuple[list[str], EnsembleScores, EnsembleScores]:
    """Every entity's ensemble under the closer's weights (a miner it did not weigh: 0)."""
    miners, alerts, clusters = score_matrices(inputs)
    w = np.array([float(weights.get(m, 0.0)) for m in miners], dtype=np.float64)
    contents = inputs.contents
    return (
        miners,
        ensemble_scores(alerts, w, list(contents.alert_ids), top_k=top_k),
        ensemble_scores(clusters, w, list(contents.cluster_ids), top_k=top_k),
    )


def share_of(ids: Sequence[str] | npt.NDArray[np.str_], partition: int, partitions: int, buckets: int) -> Ints:
    """Rows of the entities whose bucket falls in ``partition`` (bucket mod partitions), in id order."""
    found = buckets_of([str(i) for i in ids], buckets) % partitions == partition
    return np.flatnonzero(found).astype(np.int64)


def take(scores: EnsembleScores, rows: Ints) -> EnsembleScores:
    """The entities at ``rows`` (their ranks stay those over the whole batch)."""
    return EnsembleScores(
        scores.score[rows],
        scores.confidence[rows],
        scores.miner_count[rows],
        scores.agreement[rows],
        scores.std[rows],
        scores.rank[rows],
        scores.top_rows[:, rows],
        scores.top_weights[:, rows],
        scores.top_scores[:, rows],
    )


__all__ = ["closing_inputs", "score_matrices", "share_of", "shared_ensemble", "take"]
