"""``evaluate_round`` and ``judge_ground_truth`` on plain values: no tables, no codec, no broker."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from validator_fakes import DATE, make_settings

from streams.submission import submission_checksum
from validator.batches import BatchContents, Labels
from validator.ground_truth import auc_pr
from validator.outcome import MinerFacts, RoundInputs, evaluate_round, judge_ground_truth
from validator.submissions import Submission

N = 300
PUBLISHED_MS = int(dt.datetime(2026, 1, 2, 6, 0, tzinfo=dt.UTC).timestamp() * 1000)


def _contents() -> tuple[BatchContents, np.ndarray]:
    ids = np.array([f"a{i:05d}" for i in range(N)])
    labels = (np.random.default_rng(0).random(N) < 0.2).astype(np.float64)
    contents = BatchContents(ids, np.array(["c0", "c1"]), np.zeros(0, dtype=str), np.zeros(0))
    return contents, labels


def _honest(labels: np.ndarray, noise: float, seed: int) -> np.ndarray:
    logit = np.where(labels > 0, 1.2, -1.2) + np.random.default_rng(seed).normal(0, noise, len(labels))
    return 1.0 / (1.0 + np.exp(-logit))


def _submission(miner: str, ids: list[str], scores: np.ndarray, at_ms: int) -> tuple[Submission, MinerFacts]:
    order = np.lexsort((np.asarray(ids), -scores))
    ranks = np.empty(len(ids))
    ranks[order] = np.arange(1, len(ids) + 1)
    sub = Submission(
        miner,
        alert_ids=list(ids),
        alert_scores=scores.tolist(),
        alert_ranks=ranks.tolist(),
        cluster_ids=["c0", "c1"],
        cluster_scores=[0.2, 0.8],
        alert_chunks=1,
        cluster_chunks=1,
        model_versions={"v1"},
        last_produced_ms=at_ms,
    )
    marker = {
        "alert_count": len(ids),
        "cluster_count": 2,
        "alert_chunks": 1,
        "cluster_chunks": 1,
        "checksum": submission_checksum(ids, scores.tolist(), ["c0", "c1"], [0.2, 0.8]),
        "produced_at": at_ms,
    }
    return sub, MinerFacts(marker=marker)


def _inputs(tmp_path: Path, panel: dict[str, np.ndarray], **changes: Any) -> RoundInputs:
    contents, _ = _contents()
    ids = contents.alert_ids.tolist()
    subs, facts = {}, {}
    for i, (miner, scores) in enumerate(sorted(panel.items())):
        subs[miner], facts[miner] = _submission(miner, ids, scores, PUBLISHED_MS + 1000 * (i + 1))
    values: dict[str, Any] = {
        "date": DATE,
        "published_at_ms": PUBLISHED_MS,
        "contents": contents,
        "submissions": subs,
        "facts": facts,
        "expected": sorted(panel),
        "history": {},
        **changes,
    }
    return RoundInputs(**values)


def test_evaluate_round_weighs_honest_miners_and_zeroes_a_constant(tmp_path: Path) -> None:
    _, labels = _contents()
    panel = {"honest-1": _honest(labels, 0.9, 1), "honest-2": _honest(labels, 1.1, 2), "flat": np.full(N, 0.5)}
    outcome = evaluate_round(_inputs(tmp_path, panel), make_settings(tmp_path))
    weights = dict(zip(outcome.miners, outcome.weights.tolist(), strict=True))
    assert weights["flat"] == 0.0 and not outcome.behaviour[outcome.miners.index("flat")].passed
    assert weights["honest-1"] > 0.3 and weights["honest-2"] > 0.3
    assert sum(weights.values()) == pytest.approx(1.0)
    assert outcome.completed == [True, True, True]
    # the ensemble is the weighted mean of the two honest miners on every alert
    a, b = outcome.miners.index("honest-1"), outcome.miners.index("honest-2")
    expected = (weights["honest-1"] * panel["honest-1"] + weights["honest-2"] * panel["honest-2"]) / (
        weights["honest-1"] + weights["honest-2"]
    )
    assert np.allclose(outcome.alerts.score, expected)
    assert set(outcome.alerts.miner_count.tolist()) == {2}
    assert outcome.alert_matrix[a].tolist() == pytest.approx(panel["honest-1"].tolist())
    assert outcome.alert_matrix[b].tolist() == pytest.approx(panel["honest-2"].tolist())


def test_evaluate_round_priors_move_weights_and_fixed_weights_are_kept(tmp_path: Path) -> None:
    _, labels = _contents()
    panel = {"honest-1": _honest(labels, 0.9, 1), "honest-2": _honest(labels, 1.1, 2)}
    # tier-3 history: honest-1 leads by 0.03 (its prior 0.38; honest-2's 0.35, the date's own 0.5 ignored)
    history = {"honest-1": {"2026-01-01": 0.38}, "honest-2": {"2026-01-01": 0.35, "2026-01-02": 0.5}}
    settings = make_settings(tmp_path)
    outcome = evaluate_round(_inputs(tmp_path, panel, history=history), settings)
    weights = dict(zip(outcome.miners, outcome.weights.tolist(), strict=True))
    assert outcome.priors.tolist() == pytest.approx([0.38, 0.35])
    # softmax at the default temperature 0.03: a lead of 0.03 is a factor e, times today's immediate x contribution
    today = [i * b.metrics.get("contribution", 1.0) for i, b in zip(outcome.immediate, outcome.behaviour, strict=True)]
    immediate = today[0] / today[1]
    assert settings.weight_temperature == 0.03
    assert weights["honest-1"] / weights["honest-2"] == pytest.approx(np.e * immediate, rel=1e-9)
    fixed = evaluate_round(
        _inputs(tmp_path, panel, fixed_weights={"honest-1": 0.25, "honest-2": 0.75}), make_settings(tmp_path)
    )
    assert fixed.weights.tolist() == [0.25, 0.75]


def test_evaluate_round_fails_integrity_on_a_wrong_checksum_and_missing_marker(tmp_path: Path) -> None:
    _, labels = _contents()
    panel = {"honest-1": _honest(labels, 0.9, 1), "honest-2": _honest(labels, 1.1, 2), "liar": _honest(labels, 1, 3)}
    inputs = _inputs(tmp_path, panel)
    facts = dict(inputs.facts)
    assert facts["liar"].marker is not None
    facts["liar"] = MinerFacts(marker={**facts["liar"].marker, "checksum": "0" * 64})
    facts["honest-2"] = MinerFacts()
    outcome = evaluate_round(_inputs(tmp_path, panel, facts=facts), make_settings(tmp_path))
    rows = {m: i for i, m in enumerate(outcome.miners)}
    assert not outcome.integrity[rows["liar"]].passed
    assert any("checksum" in r for r in outcome.reasons[rows["liar"]])
    assert not outcome.integrity[rows["honest-2"]].passed and not outcome.completed[rows["honest-2"]]
    assert outcome.weights[rows["liar"]] == 0.0 and outcome.weights[rows["honest-2"]] == 0.0
    assert outcome.weights[rows["honest-1"]] == pytest.approx(1.0)


def test_judge_ground_truth_scores_each_miner_and_the_ensemble(tmp_path: Path) -> None:
    contents, labels = _contents()
    panel = {"honest-1": _honest(labels, 0.9, 1), "honest-2": _honest(labels, 1.1, 2), "noise": np.linspace(0, 1, N)}
    outcome = evaluate_round(_inputs(tmp_path, panel), make_settings(tmp_path))
    truth_labels = Labels(contents.alert_ids, labels, np.array(["c0", "c1"]), np.array([0.0, 1.0]))
    truth = judge_ground_truth(outcome, contents, truth_labels, k=20, top_k=3)
    for miner, scores in panel.items():
        assert truth.miner_metrics[miner]["auc_pr"] == pytest.approx(auc_pr(scores, labels))
    assert truth.ensemble_metrics["auc_pr"] == pytest.approx(auc_pr(outcome.alerts.score, labels))
    assert truth.ensemble_metrics["cluster_auc_pr"] == pytest.approx(1.0)
    assert truth.miner_scores["honest-1"] > truth.miner_scores["noise"]
    assert 0.0 <= truth.ensemble_score <= 0.5
    for miner in panel:
        row = outcome.miners.index(miner)
        contribution = truth.miner_metrics[miner]["contribution_auc_pr"]
        if outcome.weights[row] == 0.0:
            assert contribution == 0.0
        else:  # the ensemble's AUC-PR minus the AUC-PR of the ensemble without this miner
            without = outcome.weights.copy()
            without[row] = 0.0
            kept = without / without.sum()
            rest = (outcome.alert_matrix * kept[:, None]).sum(axis=0) / kept.sum()
            assert contribution == pytest.approx(truth.ensemble_metrics["auc_pr"] - auc_pr(rest, labels))


def test_judge_ground_truth_ignores_labels_of_alerts_not_in_the_batch(tmp_path: Path) -> None:
    contents, labels = _contents()
    panel = {"honest-1": _honest(labels, 0.9, 1), "honest-2": _honest(labels, 1.1, 2)}
    outcome = evaluate_round(_inputs(tmp_path, panel), make_settings(tmp_path))
    extra_ids = np.concatenate([contents.alert_ids, np.array(["zz-unknown"])])
    extra = Labels(extra_ids, np.concatenate([labels, [1.0]]), np.zeros(0, dtype=str), np.zeros(0))
    truth = judge_ground_truth(outcome, contents, extra, k=20, top_k=3)
    assert truth.ensemble_metrics["labelled"] == float(N)
