"""Study: how close the ensemble comes to the best honest miner under the weight rule, over many dates.

No broker: each simulated date goes through ``evaluate_round`` and ``judge_ground_truth`` as the
validator runs them. Two honest miners of unequal skill whose errors are partly shared
(``simulation.honest_models``: skill, confidence and the shared share drawn per seed and kept over
its dates, so one miner stays the better one), and a noisy copy of the first (sigma 0.02) that
submits after it. The labels of a date arrive before the next one, as in the end-to-end test.

For each date: ensemble AUC-PR - the better honest miner's AUC-PR, under the validator's rule
(softmax of the tier-3 moving average, ``VALIDATOR_WEIGHT_TEMPERATURE``) and, as the baseline, the
rule it replaced (moving average of final scores x immediate x contribution, default prior 0.5).
Both see the same submissions and labels (ground truth does not depend on the weights). The
first date has no labels for anyone: both rules weigh the miners equally there. A second panel of
two miners of equal skill shows what one labelled date does to their weights (luck only).

    .venv/bin/python -m bench --only weights
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from simulation import copied_scores, honest_models, make_batch
from streams.settings import StackSettings
from streams.submission import rank_by_score, submission_checksum
from validator.batches import BatchContents, Labels
from validator.ensemble import combine_weights, ensemble_scores
from validator.ground_truth import auc_pr
from validator.outcome import MinerFacts, RoundInputs, RoundOutcome, evaluate_round, judge_ground_truth, prior_of
from validator.settings import ValidatorSettings
from validator.submissions import Submission

Floats = npt.NDArray[np.float64]
SEEDS, DATES, ALERTS = 200, 5, 300
EQUAL_SEEDS = 100
START = dt.date(2026, 1, 1)
MINERS = ("honest-a", "honest-b", "noisy-copy")
HONEST = MINERS[:2]
TEMPERATURES = (0.015, 0.06)  # beside the default: what a sharper or a flatter rule gives
OLD_DEFAULT_PRIOR = 0.5
DEFAULT_T = ValidatorSettings.model_fields["weight_temperature"].default


def _submission(miner: str, ids: list[str], scores: Floats, cids: list[str], at_ms: int) -> tuple[Submission, Any]:
    clusters = [0.5] * len(cids)
    sub = Submission(
        miner,
        alert_ids=ids,
        alert_scores=scores.tolist(),
        alert_ranks=rank_by_score(ids, scores).tolist(),
        cluster_ids=cids,
        cluster_scores=clusters,
        alert_chunks=1,
        cluster_chunks=1,
        model_versions={"v1"},
        last_produced_ms=at_ms,
    )
    marker = {
        "alert_count": len(ids),
        "cluster_count": len(cids),
        "alert_chunks": 1,
        "cluster_chunks": 1,
        "checksum": submission_checksum(ids, scores.tolist(), cids, clusters),
        "produced_at": at_ms,
        "seen_at": at_ms,
    }
    return sub, MinerFacts(marker=marker)


@dataclass
class Panel:
    """Per rule: (date index, ensemble - best honest AUC-PR, larger honest weight, largest copy weight)."""

    rows: dict[str, list[tuple[int, float, float, float]]] = field(default_factory=dict)
    spread: list[tuple[float, float]] = field(default_factory=list)  # honest-a - honest-b: tiers 1-2, tier 3

    def add(self, rule: str, day: int, gap: float, weights: Floats, miners: list[str]) -> None:
        honest = max(float(weights[miners.index(m)]) for m in HONEST)
        copy = float(weights[miners.index("noisy-copy")])
        self.rows.setdefault(rule, []).append((day, gap, honest, copy))

    def of(self, rule: str) -> npt.NDArray[np.float64]:
        return np.array(self.rows[rule], dtype=np.float64)


def _old_weights(
    outcome: RoundOutcome, finals: dict[str, dict[str, float]], date: dt.date, s: ValidatorSettings
) -> Floats:
    priors = np.array([prior_of(finals.get(m), date, s.weight_alpha, OLD_DEFAULT_PRIOR) for m in outcome.miners])
    contribution = np.array([b.metrics.get("contribution", 1.0) for b in outcome.behaviour])
    eligible = np.array([outcome.eligible(r) for r in range(len(outcome.miners))])
    raw = np.where(eligible, priors * np.clip(outcome.immediate * contribution, 0.0, None), 0.0)
    weights = raw / raw.sum()
    kept = np.where(weights >= s.min_weight, weights, 0.0)
    result: Floats = kept / kept.sum()
    return result


def _new_weights(outcome: RoundOutcome, temperature: float, s: ValidatorSettings) -> Floats:
    contribution = np.array([b.metrics.get("contribution", 1.0) for b in outcome.behaviour])
    eligible = np.array([outcome.eligible(r) for r in range(len(outcome.miners))])
    return combine_weights(
        outcome.priors, outcome.immediate * contribution, eligible, min_weight=s.min_weight, temperature=temperature
    )


def simulate(seeds: range, dates: int, *, equal: bool) -> Panel:
    s = ValidatorSettings(stack=StackSettings(_env_file=None), expected_miners=list(MINERS), deadline_s=30.0)
    panel = Panel()
    for seed in seeds:
        rng = np.random.default_rng(seed)
        strengths, scales = rng.uniform(0.6, 1.4, 2), np.exp(rng.uniform(-0.7, 0.7, 2))
        shared = float(rng.uniform(0.3, 0.6))
        if equal:
            strengths[1], scales[1] = strengths[0], scales[0]
        truth_history: dict[str, dict[str, float]] = {}  # what the validator keeps: tier 3
        final_history: dict[str, dict[str, float]] = {}  # what the old rule kept: final scores
        for day in range(dates):
            date = START + dt.timedelta(days=day)
            batch = make_batch(ALERTS, date, seed=seed * 1000 + day)
            labels = batch.alert_labels.astype(np.float64)
            a, b = honest_models(
                batch.alert_labels, strengths.tolist(), scales.tolist(), shared, seed=seed * 1000 + day
            )
            scores = {"honest-a": a, "honest-b": b, "noisy-copy": copied_scores(a, seed=seed + day, noise=0.02)}
            published = int(batch.published_at.timestamp() * 1000)
            subs, facts = {}, {}
            for i, miner in enumerate(MINERS):
                at = published + 1000 * (i + 1)
                subs[miner], facts[miner] = _submission(miner, batch.alert_ids, scores[miner], batch.cluster_ids, at)
            contents = BatchContents(
                np.array(batch.alert_ids), np.array(batch.cluster_ids), np.array(batch.trap_ids),
                batch.trap_labels.astype(np.float64),
            )  # fmt: skip
            inputs = RoundInputs(
                date=date, published_at_ms=published, contents=contents, submissions=subs, facts=facts,
                expected=list(MINERS), history=truth_history,
            )  # fmt: skip
            outcome = evaluate_round(inputs, s)
            best = max(auc_pr(scores[m], labels) for m in HONEST)
            rules = {"old": _old_weights(outcome, final_history, date, s), "new": outcome.weights}
            rules |= {f"T={t}": _new_weights(outcome, t, s) for t in TEMPERATURES}
            for rule, weights in rules.items():
                ensemble = ensemble_scores(outcome.alert_matrix, weights, batch.alert_ids, top_k=s.top_contributors)
                panel.add(rule, day, auc_pr(ensemble.score, labels) - best, weights, outcome.miners)
            answers = Labels(contents.alert_ids, labels, contents.cluster_ids, batch.cluster_labels.astype(np.float64))
            truth = judge_ground_truth(outcome, contents, answers, k=s.precision_k, top_k=s.top_contributors)
            a_row, b_row = (outcome.miners.index(m) for m in HONEST)
            tier3 = truth.miner_scores["honest-a"] - truth.miner_scores["honest-b"]
            panel.spread.append((float(outcome.immediate[a_row] - outcome.immediate[b_row]), tier3))
            for row, miner in enumerate(outcome.miners):
                credited = outcome.eligible(row)
                gt = truth.miner_scores[miner] if credited else 0.0
                truth_history.setdefault(miner, {})[date.isoformat()] = gt
                final_history.setdefault(miner, {})[date.isoformat()] = outcome.immediate[row] + gt if credited else 0.0
    return panel


def _row(case: str, value: float, unit: str, baseline: float | None = None) -> dict[str, Any]:
    return {"component": "weights", "case": case, "value": value, "unit": unit, "baseline": baseline, "ratio": None}


def _below(gaps: Floats) -> float:
    return float(np.mean(gaps < -0.01))


def run() -> list[dict[str, Any]]:
    unequal = simulate(range(SEEDS), DATES, equal=False)
    equal = simulate(range(10_000, 10_000 + EQUAL_SEEDS), 2, equal=True)
    old, new = unequal.of("old"), unequal.of("new")
    first, labelled = new[:, 0] == 0, new[:, 0] > 0
    span = f"{SEEDS} seeds x {DATES} dates, {ALERTS} alerts"
    gaps, old_gaps = new[labelled, 1], old[labelled, 1]
    rows = [
        _row(f"{span}: 1st date (no labels), share below best honest - 0.01", _below(new[first, 1]), "share",
             _below(old[first, 1])),
        _row(f"{span}: labelled dates, share below best honest - 0.01", _below(gaps), "share", _below(old_gaps)),
        _row(f"{span}: labelled dates, 5th percentile of ensemble - best honest", float(np.percentile(gaps, 5)),
             "AUC-PR", float(np.percentile(old_gaps, 5))),
        _row(f"{span}: labelled dates, median of ensemble - best honest", float(np.median(gaps)), "AUC-PR",
             float(np.median(old_gaps))),
        _row(f"{span}: labelled dates, worst ensemble - best honest", float(gaps.min()), "AUC-PR",
             float(old_gaps.min())),
    ]  # fmt: skip
    for t in TEMPERATURES:
        other = unequal.of(f"T={t}")[labelled, 1]
        rows.append(_row(f"{span}: labelled dates below best - 0.01 at temperature {t} (default {DEFAULT_T})",
                         _below(other), "share"))  # fmt: skip
    copies = (float(new[:, 3].max()), float(old[:, 3].max()))
    rows.append(_row(f"{span}: largest weight of the noisy copy", copies[0], "weight", copies[1]))
    immediate, tier3 = np.array(equal.spread).std(axis=0)
    rows.append(_row(f"equal skill, {EQUAL_SEEDS} seeds x 2 dates: spread (std) of honest-a - honest-b in tiers 1-2",
                     float(immediate), "score", None))  # fmt: skip
    rows.append(_row(f"equal skill, {EQUAL_SEEDS} seeds x 2 dates: spread (std) of honest-a - honest-b in tier 3",
                     float(tier3), "score", None))  # fmt: skip
    e_new, e_old = equal.of("new"), equal.of("old")
    after = e_new[:, 0] == 1
    for name, q in (("median", 50), ("95th percentile", 95)):
        larger = (float(np.percentile(e_new[after, 2], q)), float(np.percentile(e_old[after, 2], q)))
        rows.append(_row(f"equal skill, {EQUAL_SEEDS} seeds: larger honest weight after 1 labelled date, {name}",
                         larger[0], "weight", larger[1]))  # fmt: skip
    return rows


if __name__ == "__main__":
    from bench.table import print_rows

    print_rows(run())
