"""``miner check`` on a batch with known answers: an oracle, a flaky and a partial scorer, and the ensemble."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from miner_synth import Published

from miner.diagnostics import check_submission, fetch_ensemble, render_report
from miner.scorer import Batch, BatchScores, Scorer, TrainingDay
from streams.batch import labels_for, read_batch
from streams.codec import AvroCodec
from streams.schema_registry import FileSchemaRegistry


@dataclass(frozen=True, slots=True)
class Answers:
    """Scores fixed in advance per alert id (the oracle knows the labels); ``jitter`` breaks determinism."""

    scores: dict[str, float]
    keep: float = 1.0
    jitter: bool = False
    name: str = "answers"
    version: str = "answers-1"
    trainable: bool = False

    def fit(self, history: Sequence[TrainingDay]) -> Scorer:
        return self

    def save(self, directory: Path) -> str:
        return self.version

    def load(self, directory: Path) -> Scorer:
        return self

    def score(self, batch: Batch) -> BatchScores:
        ids = [str(i) for i in batch.alerts["alert_id"].to_pylist()]
        ids = ids[: int(len(ids) * self.keep)]
        values = np.array([self.scores[i] for i in ids])
        if self.jitter:
            values = np.clip(values + np.random.default_rng().uniform(0, 1e-3, values.size), 0, 1)
        clusters = [str(i) for i in batch.clusters["cluster_id"].to_pylist()]
        return BatchScores(ids, values, clusters, np.full(len(clusters), 0.5))


def _truth(published: Published) -> tuple[Batch, dict[str, int]]:
    batch = read_batch(published.store, published.keys[-1])
    labels = labels_for(published.store, batch.manifest)
    assert labels is not None
    return batch, dict(zip(labels.alerts["alert_id"].to_pylist(), labels.alerts["label"].to_pylist(), strict=True))


def test_an_oracle_passes_and_scores_perfectly_next_to_a_constant_ensemble(published: Published) -> None:
    batch, truth = _truth(published)
    labels = labels_for(published.store, batch.manifest)
    prevalence = sum(truth.values()) / len(truth)
    oracle = Answers({a: float(y) for a, y in truth.items()})
    ensemble = dict.fromkeys(truth, 0.5)
    codec = AvroCodec(FileSchemaRegistry.default())
    report = check_submission(oracle, batch, labels, codec=codec, ensemble=ensemble, ensemble_source="test")
    checks = {f.name: f for f in report.findings}
    # a two-valued oracle is what the validator calls degenerate, and its ranks (ties broken by id)
    # agree with its tied scores only partly: those two checks fail, as they would in the validator
    assert [f.name for f in report.findings if not f.ok] == ["rank consistency", "not constant"]
    assert checks["completeness"].value == 1.0 and checks["range"].value == 1.0
    assert checks["determinism"].ok and checks["schema"].ok and not report.ok
    mine, theirs = report.ground_truth["miner"], report.ground_truth["ensemble"]
    assert (mine["auc_roc"], mine["auc_pr"], mine["precision_at_k"], mine["brier"], mine["calibration_error"]) == (
        1.0, 1.0, 1.0, 0.0, 0.0,
    )  # fmt: skip
    assert theirs["auc_roc"] == 0.5 and theirs["brier"] == pytest.approx(0.25)
    assert theirs["calibration_error"] == pytest.approx(abs(0.5 - prevalence))
    assert theirs["auc_pr"] == pytest.approx(prevalence)  # every alert tied: precision is the prevalence
    text = render_report(report)
    assert "ok   determinism" in text and "FAIL not constant" in text and "ensemble from test" in text
    graded = Answers({a: 0.5 + 0.4 * y + 0.0001 * n for n, (a, y) in enumerate(truth.items())})
    assert check_submission(graded, batch, labels).ok
    assert "would pass tiers 1-2" in render_report(check_submission(graded, batch, labels))


def test_a_flaky_or_partial_scorer_is_told_why_it_would_fail(published: Published) -> None:
    batch, truth = _truth(published)
    flaky = check_submission(Answers({a: 0.3 + 0.4 * y for a, y in truth.items()}, jitter=True), batch, None)
    assert not flaky.ok and not {f.name: f for f in flaky.findings}["determinism"].ok
    partial = check_submission(Answers({a: 0.3 + 0.4 * y for a, y in truth.items()}, keep=0.5), batch, None)
    completeness = {f.name: f for f in partial.findings}["completeness"]
    assert not completeness.ok and completeness.value == 0.5
    constant = check_submission(Answers(dict.fromkeys(truth, 0.5)), batch, None)
    assert not {f.name: f for f in constant.findings}["not constant"].ok
    assert "FAIL determinism" in render_report(flaky) and "not published yet" in render_report(flaky)


def test_the_ensemble_is_read_page_by_page_from_the_gateway() -> None:
    rows = [{"alert_id": f"a{i}", "ensemble_score": i / 10} for i in range(5)]

    def answer(request: httpx.Request) -> httpx.Response:
        if "2026-01-02" in request.url.path:
            return httpx.Response(404, json={"message": "no ensemble"})
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        return httpx.Response(200, json={"ensemble_scores": rows[offset : offset + limit]})

    client = httpx.Client(base_url="http://gw", transport=httpx.MockTransport(answer))
    assert fetch_ensemble("http://gw", "ethereum", dt.date(2026, 1, 1), client=client, page=2) == {
        f"a{i}": i / 10 for i in range(5)
    }
    assert fetch_ensemble("http://gw", "ethereum", dt.date(2026, 1, 2), client=client) is None


def test_average_precision_matches_scikit_learn_with_ties() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    from miner.metrics import auc_pr

    rng = np.random.default_rng(5)
    for decimals in (1, 2, 6):
        y, s = rng.integers(0, 2, 400), np.round(rng.random(400), decimals)
        assert auc_pr(y, s) == pytest.approx(metrics.average_precision_score(y, s), abs=1e-12)
