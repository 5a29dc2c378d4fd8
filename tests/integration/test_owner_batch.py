"""A data owner's own batch, end to end as separate processes on the ``torus`` network.

The owner's files are built with plain pyarrow (no generator code), checked with ``sot
check``, published with ``sot publish --from``, scored by two miners, ensembled, and its
ground truth published with ``sot labels --from`` once due (the date is old enough for T +
tau to have passed); tier-3 results for it then appear in REST. A different batch for the
date is then published with ``--replace`` (its announcement signed by the operator): the
validator opens version 2 with the new batch's alerts.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from ops.demo import Demo, DemoPlan, MinerPlan, isolated_run
from ops.processes import wait_until
from simulation.owner_files import build_owner_batch, write_files
from streams.stack import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

ALERTS = 150


def _sot(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "streams.cli", "sot", *args]
    return subprocess.run(command, env=env, cwd=cwd, timeout=300, capture_output=True, text=True, check=False)


def _ground_truth(url: str, day: dt.date) -> dict[str, Any]:
    try:
        answer = httpx.get(f"{url}/validation/{day}", params={"network": "torus"}, timeout=5.0)
    except httpx.HTTPError:
        return {}
    if answer.status_code != 200:
        return {}
    return {r["miner_id"]: r for r in answer.json()["results"] if r.get("stage") == "ground_truth"}


def test_an_owner_batch_is_checked_published_scored_and_judged(broker: str, namespace: str, tmp_path: Path) -> None:
    stack, env = isolated_run(tmp_path / "home", broker, namespace)
    env = {**env, "GATEWAY_NETWORK": "torus"}  # what the gateway serves when a request names no network
    plan = DemoPlan.for_today(
        days=1, history=3, network="torus", alerts=300, addresses=1_500, flows=15_000, clusters=15, deadline_s=90,
        gateway_port=free_port(), configure_expected=False,
        miners=(MinerPlan("miner-a", "honest-a"), MinerPlan("miner-b", "honest-b")),
    )  # fmt: skip
    (day,) = plan.days  # T + tau is already past: its labels are due
    owner = build_owner_batch("torus", day, alerts=ALERTS, addresses=800, flows=4_000, seed=11)
    files = write_files(owner.files, tmp_path / "owner" / "batch")
    truth = write_files(owner.labels, tmp_path / "owner" / "truth")
    args = ["--network", "torus", "--date", day.isoformat()]

    with Demo(plan, stack, env, cwd=tmp_path) as demo:
        sot_env = {**env, **plan.sot_env}
        keygen = [sys.executable, "-m", "streams.cli", "operator", "keygen"]
        subprocess.run(keygen, env=sot_env, cwd=tmp_path, timeout=60, capture_output=True, check=True)
        demo.prepare_history()  # the miners learn torus from generated, labelled history
        demo.train_miners()
        demo.start_services()

        checked = _sot(sot_env, tmp_path, "check", str(files), *args)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "0 problem(s)" in checked.stdout
        published = _sot(sot_env, tmp_path, "publish", "--from", str(files), *args)
        assert published.returncode == 0, published.stdout + published.stderr

        demo.wait_for_ensembles(plan.days, timeout=300)
        body = httpx.get(
            f"{demo.gateway_url}/ensemble/scores/alerts/{day}", params={"limit": 1000, "network": "torus"}, timeout=10
        ).json()
        assert body["metadata"]["trigger"] == "all_complete", body["metadata"]
        scored = {s["alert_id"] for s in body["ensemble_scores"]}
        assert scored == set(owner.files["alerts.parquet"].column("alert_id").to_pylist())
        validation = httpx.get(f"{demo.gateway_url}/validation/{day}", params={"network": "torus"}, timeout=10).json()
        immediate = {r["miner_id"]: r for r in validation["results"] if r.get("stage") == "immediate"}
        assert immediate["miner-a"]["weight"] > 0.1 and immediate["miner-b"]["weight"] > 0.1

        labelled = _sot(sot_env, tmp_path, "labels", "--from", str(truth), *args)
        assert labelled.returncode == 0, labelled.stdout + labelled.stderr
        wait_until(
            f"tier-3 results of {day} in the gateway",
            lambda: {"miner-a", "miner-b"} <= set(_ground_truth(demo.gateway_url, day)),
            timeout=240,
            interval=1.0,
        )
        results = _ground_truth(demo.gateway_url, day)
        for miner in ("miner-a", "miner-b"):
            assert 0.0 <= results[miner]["metrics"]["auc_roc"] <= 1.0, results[miner]

        other = build_owner_batch("torus", day, alerts=ALERTS - 30, addresses=800, flows=4_000, seed=12)
        again = write_files(other.files, tmp_path / "owner" / "replacement")
        refused = _sot(sot_env, tmp_path, "publish", "--from", str(again), *args)
        assert refused.returncode == 2 and "--replace" in refused.stderr
        replaced = _sot(sot_env, tmp_path, "publish", "--from", str(again), *args, "--replace")
        assert replaced.returncode == 0, replaced.stdout + replaced.stderr
        demo.wait_for_ensembles(plan.days, min_version=2, timeout=300)
        body = httpx.get(
            f"{demo.gateway_url}/ensemble/scores/alerts/{day}", params={"limit": 1000, "network": "torus"}, timeout=10
        ).json()
        assert body["version"] == 2
        assert {s["alert_id"] for s in body["ensemble_scores"]} == set(
            other.files["alerts.parquet"].column("alert_id").to_pylist()
        )
