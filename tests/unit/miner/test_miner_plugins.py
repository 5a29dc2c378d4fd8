"""Scorer plug-ins: found by module:factory or entry point, checked before anything is sent, swapped live."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from miner_synth import Published
from plugin_scorer import ColumnScorer
from test_miner_agent import CODEC, FakeProducer, _message, _settings, _submission

from miner import plugins
from miner.agent import FAILED, SUBMITTED, MinerAgent
from miner.app import scorer_context
from miner.errors import ScorerError
from miner.plugins import make_scorer
from miner.scorer import Scorer


def _agent(tmp_path: Path, published: Published, scorer: Scorer) -> tuple[MinerAgent, FakeProducer]:
    producer = FakeProducer()
    settings = _settings(tmp_path, model_dir=tmp_path / "models")
    return MinerAgent(settings, store=published.store, producer=producer, codec=CODEC, scorer=scorer), producer


def test_a_factory_loads_by_module_path_and_by_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context = scorer_context(_settings(tmp_path))
    assert isinstance(make_scorer("plugin_scorer:factory", context), ColumnScorer)
    point = EntryPoint(name="column", value="plugin_scorer:factory", group=plugins.ENTRY_POINT_GROUP)

    def fake_entry_points(group: str) -> list[EntryPoint]:
        return [point] if group == plugins.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(plugins, "entry_points", fake_entry_points)
    assert isinstance(make_scorer("column", context), ColumnScorer)
    assert plugins.installed() == {"column": "plugin_scorer:factory"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nonsense", "unknown scorer 'nonsense'.*honest-a"),
        ("no_such_module:factory", "cannot be imported: ModuleNotFoundError"),
        ("plugin_scorer:missing", "cannot be imported: AttributeError"),
        ("plugin_scorer:broken", "returned a object that lacks name, version"),
    ],
)
def test_a_bad_scorer_name_says_why(tmp_path: Path, spec: str, message: str) -> None:
    with pytest.raises(ScorerError, match=message):
        make_scorer(spec, scorer_context(_settings(tmp_path)))


async def test_a_plugin_scorer_submits_with_its_version_and_ranks(tmp_path: Path, published: Published) -> None:
    scorer = ColumnScorer(mode="reversed-ranks").fit([])  # version "column-0d"
    agent, producer = _agent(tmp_path, published, scorer)
    [outcome] = await agent.handle(_message(published.store, published.keys[-1]))
    assert outcome.status == SUBMITTED
    sub = _submission(producer)
    assert {r["model_version"] for r in sub["alerts"]} == {"column-0d"}
    assert sub["complete"][0]["model_versions"] == {"alert_scorer": "column-0d", "cluster_scorer": "column-0d"}
    ids = [i for r in sub["alerts"] for i in r["alert_ids"]]
    ranks = [k for r in sub["alerts"] for k in r["ranks"]]
    batch_ids = published.held_out[-1].tables["alerts.parquet"]["alert_id"].to_pylist()
    assert dict(zip(ids, ranks, strict=True)) == {i: len(batch_ids) - n for n, i in enumerate(batch_ids)}


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("nan", "1 alert scores that are NaN, infinite or outside"),
        ("unknown", "1 alert ids that are not in the batch"),
        ("ranks", "not a permutation"),
    ],
)
async def test_scores_that_break_the_contract_are_reported_not_sent(
    tmp_path: Path, published: Published, mode: str, message: str
) -> None:
    agent, producer = _agent(tmp_path, published, ColumnScorer(mode=mode, version="v1"))
    [outcome] = await agent.handle(_message(published.store, published.keys[-1]))
    assert outcome.status == FAILED and message in outcome.error
    assert producer.on("t.scores.m1") == []
    [(_, error)] = producer.on("t.miner.errors")
    assert error.record["error_type"] == "ScorerError"


async def test_a_swapped_scorer_scores_the_next_batch_and_a_saved_model_is_picked_up(
    tmp_path: Path, published: Published
) -> None:
    agent, producer = _agent(tmp_path, published, ColumnScorer())
    [failed] = await agent.handle(_message(published.store, published.keys[-1]))
    assert failed.status == FAILED and "no column model" in failed.error  # nothing trained yet
    ColumnScorer(version="column-7d").save(tmp_path / "models")
    versions: list[Any] = []
    for key in published.keys[-2:]:  # two batches (a batch already submitted is not scored again)
        producer.sent.clear()
        await agent.handle(_message(published.store, key))
        versions.append(_submission(producer)["complete"][0]["model_versions"]["alert_scorer"])
        agent.swap(ColumnScorer(version="column-8d"))
    assert versions == ["column-7d", "column-8d"]
