"""``riskstream sot``: bad input gives one clear error line and a non-zero exit."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from streams import batch as contract
from streams.cli import main
from streams.objectstore import FileObjectStore

SMALL_ENV = {"SOT_ALERTS": "200", "SOT_ADDRESSES": "1000", "SOT_FLOWS": "5000", "SOT_CLUSTERS": "10", "SOT_SEED": "3"}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    store = tmp_path / "store"
    for name, value in SMALL_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RISKSTREAM_OBJECT_STORE_URL", f"file://{store}")
    monkeypatch.setenv("RISKSTREAM_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.delenv("SOT_NETWORK", raising=False)
    return store


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("command", ["generate", "publish", "labels"])
def test_a_name_that_is_not_a_network(env: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    assert main(["sot", command, "--network", "Doge Coin", "--date", "2026-01-02"]) == 2
    assert "not a network name: 'Doge Coin'" in _error_line(capsys)


@pytest.mark.parametrize("command", ["generate", "publish", "labels"])
def test_bad_date(env: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    assert main(["sot", command, "--date", "2026-13-40"]) == 2
    assert "not a date (YYYY-MM-DD): '2026-13-40'" in _error_line(capsys)


def test_unreachable_store(env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RISKSTREAM_OBJECT_STORE_URL", "s3://sot")
    monkeypatch.setenv("RISKSTREAM_S3_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("RISKSTREAM_S3_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("RISKSTREAM_S3_SECRET_ACCESS_KEY", "x")
    assert main(["sot", "publish", "--date", "2026-01-02"]) == 2
    assert "cannot stat s3://sot/" in _error_line(capsys)


def test_unreachable_broker(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sot", "publish", "--date", "2026-01-02"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("riskstream sot: error: broker 127.0.0.1:1 unreachable")


def test_impossible_sizes(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sot", "generate", "--date", "2026-01-02", "--alerts", "900"]) == 2
    assert "alerts must be between 10 and half the addresses (500), got 900" in _error_line(capsys)


def test_labels_are_refused_before_they_are_due(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    today = dt.datetime.now(dt.UTC).date()
    assert main(["sot", "labels", "--date", today.isoformat()]) == 2
    line = _error_line(capsys)
    assert f"are due on {today + dt.timedelta(days=7)}" in line and "--force" in line


def test_labels_of_a_batch_never_published(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sot", "labels", "--date", "2026-01-02", "--force"]) == 2
    assert "no published batch ethereum 2026-01-02" in _error_line(capsys)


def test_generate_writes_a_complete_batch(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["sot", "generate", "--network", "tron", "--date", "2026-01-02", "--out", str(out)]) == 0
    manifest_key = contract.snapshot_key("tron", dt.date(2026, 1, 2), 7, contract.MANIFEST)
    assert capsys.readouterr().out.strip().endswith(manifest_key)
    manifest = contract.Manifest.from_json(FileObjectStore(out).get(manifest_key))
    assert manifest.files["alerts.parquet"].rows == 200 and manifest.files["money_flows.parquet"].rows == 5000
