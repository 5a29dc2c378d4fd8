"""``riskstream miner train`` / ``run`` argument handling and the training command end to end."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from miner_synth import Published

from miner.app import check_models
from miner.cli import register
from miner.settings import MinerSettings
from streams.settings import StackSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riskstream")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_train_command_writes_three_models(
    published: Published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .riskstream/stack.env of a developer's stack
    monkeypatch.setenv("RISKSTREAM_OBJECT_STORE_URL", f"file://{published.store.root}")
    monkeypatch.setenv("RISKSTREAM_HOME", str(tmp_path / "home"))
    first, last = published.train_dates[0], published.train_dates[2]  # 2 to fit on, 1 held out
    args = _parser().parse_args(
        ["miner", "train", "--miner-id", "m7", "--profile", "honest-b",
         "--start-date", first.isoformat(), "--end-date", last.isoformat(), "--window-days", "7"]
    )  # fmt: skip
    assert args.run(args) == 0
    models = sorted(p.name for p in (tmp_path / "home" / "models" / "m7").iterdir() if p.name != "retraining.json")
    assert len(models) == 6 and all(m.split("_v1.0.0_")[0] in {
        "alert_scorer_ethereum", "alert_ranker_ethereum", "cluster_scorer_ethereum"} for m in models)  # fmt: skip
    out = capsys.readouterr().out
    assert "trained alert_scorer_ethereum_v1.0.0_" in out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["promoted"] and summary["candidate"]["auc_pr"] > 0.3
    assert summary["validation_dates"] == [last.isoformat()] and summary["train_dates"] == [
        d.isoformat() for d in published.train_dates[:2]
    ]
    settings = MinerSettings(miner_id="m7", stack=StackSettings(_env_file=None, home=tmp_path / "home"))
    assert check_models(settings) is None


def test_run_arguments() -> None:
    args = _parser().parse_args(["miner", "run", "--miner-id", "m1", "--profile", "late", "--delay-s", "5", "--once"])
    assert args.once and args.delay_s == 5.0 and args.profile == "late"
    with pytest.raises(SystemExit):
        _parser().parse_args(["miner", "run", "--miner-id", "m1", "--profile", "nonsense"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["miner", "run", "--miner-id", "m1", "--once", "--max-batches", "2"])


def test_settings_validate_and_name_things(tmp_path: Path) -> None:
    stack = StackSettings(_env_file=None, home=tmp_path, topic_namespace="ns.")
    settings = MinerSettings(miner_id="m-1", stack=stack)
    assert settings.models_path == tmp_path / "models" / "m-1"
    assert settings.group_id == "ns.miner-m-1"
    assert "no trained alert_scorer model" in (check_models(settings) or "")
    assert check_models(MinerSettings(miner_id="m-1", stack=stack, profile="random")) is None
    with pytest.raises(ValueError, match="miner id"):
        MinerSettings(miner_id="Bad Id", stack=stack)
