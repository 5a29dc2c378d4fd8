"""Strangers on an open broker change nothing: the same run with and without adversaries gives the same answers.

Two honest miners, the validator and the gateway run as separate processes, once calm and once
under attack; the adversaries are separate processes too (``adversary.py``: confluent-kafka,
fastavro and an Ed25519 library, no riskstream code): an impersonator before and after the
honest submission, garbage keyed with a date on a miner's topic, a forged ensemble version, a
burst of unsigned replay commands, a phantom registration and a forged withdrawal. Afterwards
every honest miner's submission, weight and ground-truth metrics, the ensemble and its versions
are those of the calm run, and the round closed as soon as every active miner completed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ops.demo import Demo, DemoPlan, MinerPlan, isolated_run
from ops.processes import wait_until
from streams.stack import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]  # two full runs on 2 cores

ADVERSARY = Path(__file__).with_name("adversary.py")
HONEST = ("miner-a", "miner-b")
LIVENESS = {"MINER_HEARTBEAT_S": "2", "VALIDATOR_HEARTBEAT_TIMEOUT_S": "12", "VALIDATOR_UNBOUND_GRACE_S": "5"}


def _attack(bootstrap: str, namespace: str, attack: str, *args: str) -> None:
    command = [sys.executable, str(ADVERSARY), "--bootstrap", bootstrap, "--namespace", namespace, attack, *args]
    out = subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr.decode()[-3000:]


def _get(demo: Demo, path: str, **params: Any) -> Any:
    answer = httpx.get(f"{demo.gateway_url}{path}", params=params, timeout=15)
    assert answer.status_code == 200, f"{path}: {answer.text[:300]}"
    return answer.json()


def _ground_truth_in(demo: Demo, day: dt.date) -> bool:
    try:
        rows = _get(demo, f"/validation/{day}")["results"]
    except AssertionError:
        return False
    return {r["miner_id"] for r in rows if r.get("stage") == "ground_truth"} >= set(HONEST)


def _answers(demo: Demo, day: dt.date) -> dict[str, Any]:
    """What a client can see of ``day``: ensemble, versions, submissions, weights, ground truth."""
    ensemble = _get(demo, f"/ensemble/scores/alerts/{day}", limit=10_000)
    validation = _get(demo, f"/validation/{day}")["results"]
    found: dict[str, Any] = {
        "version": ensemble["version"],
        "trigger": ensemble["metadata"]["trigger"],
        "scores": {s["alert_id"]: s["ensemble_score"] for s in ensemble["ensemble_scores"]},
        "versions": demo.available(),
    }
    for miner in HONEST:
        rows = {r["stage"]: r for r in validation if r["miner_id"] == miner}
        submission = _get(demo, f"/submissions/{day}/{miner}", limit=10_000)
        completion = {k: v for k, v in submission["completion"].items() if k not in ("latency_ms", "produced_at")}
        found[miner] = {
            "weight": rows["immediate"]["weight"],
            "immediate": rows["immediate"]["immediate_score"],
            "reasons": rows["immediate"]["reasons"],
            "ground_truth": rows["ground_truth"]["metrics"],
            "final": rows["ground_truth"]["final_score"],
            "scores": orjson.dumps(submission["scores"], option=orjson.OPT_SORT_KEYS),  # what the gateway shows as its
            "completion": completion,  # submission (its own times aside: the runs are minutes apart)
        }
    return found


def _run(tmp_path: Path, broker: str, namespace: str, plan: DemoPlan, attacked: bool, trained: bool) -> dict[str, Any]:
    run = "attacked" if attacked else "calm"
    ns = f"{namespace}{run}."
    stack, env = isolated_run(tmp_path / "home", broker, ns)  # one home: batches, models and keys are shared
    env |= {**LIVENESS, "RISKSTREAM_CLICKHOUSE_URL": f"chdb://{tmp_path / f'chdb-{run}'}"}
    stack = stack.model_copy(update={"clickhouse_url": f"chdb://{tmp_path / f'chdb-{run}'}"})
    (day,) = plan.days
    plan = dataclasses.replace(plan, gateway_port=free_port())
    with Demo(plan, stack, env, cwd=tmp_path) as demo:
        if not trained:
            demo.prepare_history()
            demo.train_miners()
        demo.start_services()
        if attacked:
            _attack(broker, ns, "phantom", "--miner", "miner-ghost")
            _attack(broker, ns, "withdraw", "--miner", "miner-a")
            _attack(broker, ns, "impersonate", "--miner", "miner-a", "--date", day.isoformat())
            _attack(broker, ns, "garbage", "--miner", "miner-b", "--date", day.isoformat())
        demo.publish_days()
        demo.wait_for_ensembles(plan.days, timeout=400)
        if attacked:
            _attack(broker, ns, "impersonate", "--miner", "miner-a", "--date", day.isoformat(), "--after")
            _attack(broker, ns, "forge-ensemble", "--date", day.isoformat())
            _attack(broker, ns, "replay-burst", "--date", day.isoformat())
            log = demo.processes.log_dir / "validator.log"
            wait_until(
                "the validator to refuse the 11 replay commands",
                lambda: log.read_text(errors="replace").count("control command") >= 11,
                timeout=120,
            )
        demo.publish_labels(day)
        wait_until(f"ground truth of {day} in the gateway", lambda: _ground_truth_in(demo, day), timeout=300)
        if attacked:
            dead = (demo.processes.log_dir / "validator.log").read_text(errors="replace")
            assert dead.count("dead-lettered") >= 4, dead[-3000:]  # impersonations, garbage, copies
        time.sleep(3)  # the sink has stored what the broker held when ground truth showed: nothing more is coming
        return _answers(demo, day)


def test_adversaries_change_no_honest_answer(broker: str, namespace: str, tmp_path: Path) -> None:
    plan = DemoPlan.for_today(
        days=1, history=3, alerts=300, addresses=1_500, flows=15_000, clusters=15, deadline_s=300,
        configure_expected=False, miners=(MinerPlan("miner-a", "honest-a"), MinerPlan("miner-b", "honest-b")),
    )  # fmt: skip
    calm = _run(tmp_path, broker, namespace, plan, attacked=False, trained=False)
    attacked = _run(tmp_path, broker, namespace, plan, attacked=True, trained=True)
    day = plan.days[0].isoformat()
    assert calm["trigger"] == attacked["trigger"] == "all_complete"  # not the 300 s deadline: the phantom lapsed
    assert calm["version"] == attacked["version"] == 1  # the forged v99 is not served, no replay was accepted
    assert calm["versions"] == attacked["versions"] == {day: 1}
    assert attacked["scores"] == calm["scores"]
    for miner in HONEST:
        assert attacked[miner] == calm[miner], miner
