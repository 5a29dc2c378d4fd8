"""The whole system as separate processes: SOT, 2 honest miners + a copycat, an outside miner
(examples/hgb_miner, installed as a package), a miner written from docs/miner-protocol.md alone,
validator, gateway.

Asserts the ensemble through REST and through a plain Avro topic subscriber, then replays a
date from the score topics and asserts a new version with identical scores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ops.demo import Demo, DemoPlan, MinerPlan, isolated_run
from ops.processes import wait_until
from streams.stack import free_port

# history, four trainings (three XGBoost, one HistGradientBoosting) and six services on 2 shared cores
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
ALERTS = 300


def _scores(demo: Demo, day: dt.date) -> dict[str, Any]:
    answer = httpx.get(f"{demo.gateway_url}/ensemble/scores/alerts/{day}", params={"limit": 10_000}, timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _subscribe(demo: Demo, env: dict[str, str], group: str) -> list[dict[str, Any]]:
    """Run the documented plain confluent-kafka example until the topic goes quiet."""
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "gateway" / "examples" / "consume_ensemble_alerts.py"),
            "--bootstrap",
            demo.stack.bootstrap_servers,
            "--registry",
            demo.gateway_url,
            "--topic",
            demo.stack.topics.ensemble_alerts,
            "--group",
            group,
            "--idle-seconds",
            "8",
            "--session-timeout-ms",
            "6000",
        ],  # fmt: skip
        capture_output=True,
        env=env,
        timeout=180,
        check=True,
    )
    return [orjson.loads(line) for line in out.stdout.splitlines()]


def _replay(day: dt.date, source: str, env: dict[str, str], cwd: Path) -> None:
    command = [sys.executable, "-m", "streams.cli", "replay", "--date", day.isoformat(), "--from", source]
    subprocess.run(command, env=env, cwd=cwd, check=True, timeout=60, capture_output=True)


def _install_example(target: Path) -> None:
    """Install examples/hgb_miner like a user would (its own package, its entry point), into ``target``."""
    example = ROOT / "examples" / "hgb_miner"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(example)],
        check=True, timeout=600, capture_output=True,
    )  # fmt: skip


@contextlib.contextmanager
def _document_miner(demo: Demo, env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The miner written from docs/miner-protocol.md, as its own process, stopped (withdrawn) on the way out."""
    log = demo.processes.log_dir / "doc-miner.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("conformance_miner.py")),
             "--bootstrap", demo.stack.bootstrap_servers,
             "--store", demo.stack.object_store_url.removeprefix("file://"),
             "--schemas", str(ROOT / "schemas" / "avro"), "--miner-id", "doc-miner",
             "--namespace", demo.stack.topic_namespace, "--partitions", str(demo.stack.topic_partitions),
             "--key-file", str(tmp_path / "doc-miner.pem"),
             "--operator-key", f"operator={demo.stack.home / 'keys' / 'operator.pub'}"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _registered(demo: Demo, miners: set[str], document_miner: subprocess.Popen[bytes]) -> bool:
    """True once the validator has accepted the signed registration of every one of ``miners``."""
    demo.processes.check()
    if document_miner.poll() is not None:
        output = (demo.processes.log_dir / "doc-miner.log").read_text(errors="replace")
        raise AssertionError(f"the document miner exited with {document_miner.returncode}:\n{output[-3000:]}")
    log = demo.processes.log_dir / "validator.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return miners <= set(re.findall(r"miner (\S+) registered", text))


def test_publish_validate_query_subscribe_and_replay(broker: str, namespace: str, tmp_path: Path) -> None:
    stack, env = isolated_run(tmp_path / "home", broker, namespace)
    site = tmp_path / "site"
    _install_example(site)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    env["VALIDATOR_LOG_LEVEL"] = "INFO"  # it logs each registration it accepts: the test waits for them
    plan = DemoPlan.for_today(
        days=2, history=4, alerts=ALERTS, addresses=1_500, flows=15_000, clusters=15, deadline_s=60,
        gateway_port=free_port(), configure_expected=False,
    )  # fmt: skip
    assert [(m.miner_id, m.profile, m.copy_of) for m in plan.miners] == [
        ("miner-a", "honest-a", None),
        ("miner-b", "honest-b", None),
        ("miner-c", "copycat", "miner-a"),
    ]
    plan = dataclasses.replace(plan, miners=(*plan.miners, MinerPlan("miner-d", "hgb", scorer="hgb")))

    with Demo(plan, stack, env, cwd=tmp_path) as demo:
        demo.prepare_history()
        demo.train_miners()
        demo.start_services()
        with _document_miner(demo, env, tmp_path) as document_miner:
            _serve(demo, plan, document_miner, namespace, env, tmp_path)


def _serve(
    demo: Demo,
    plan: DemoPlan,
    document_miner: subprocess.Popen[bytes],
    namespace: str,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    first, second = plan.days
    # the validator waits for the miners it knows when a batch is announced: announce once it knows all
    every_miner = {m.miner_id for m in plan.miners} | {"doc-miner"}
    registered = functools.partial(_registered, demo, every_miner, document_miner)
    wait_until("the validator to accept every registration", registered, timeout=300)
    demo.publish_days()
    demo.wait_for_ensembles(plan.days, timeout=300)

    # REST: every alert of both dates, scores in [0, 1], ranks 1..N
    for day in plan.days:
        body = _scores(demo, day)
        assert body["processing_date"] == day.isoformat()
        assert body["version"] == 1
        # no miner is configured: the validator waited for the ones that registered, not the deadline
        assert body["metadata"]["trigger"] == "all_complete", body["metadata"]
        scores = body["ensemble_scores"]
        assert len(scores) == ALERTS
        assert all(0.0 <= s["ensemble_score"] <= 1.0 for s in scores)
        assert sorted(s["rank"] for s in scores) == list(range(1, ALERTS + 1))
    before = {s["alert_id"]: s["ensemble_score"] for s in _scores(demo, first)["ensemble_scores"]}

    # the copycat is caught: no weight in the ensemble, with a reason
    by_miner: dict[str, dict[str, Any]] = {}

    def judged() -> bool:  # the verdicts reach the warehouse next to, not with, the ensemble
        validation = httpx.get(f"{demo.gateway_url}/validation/{first}", timeout=10).json()
        by_miner.update({r["miner_id"]: r for r in validation["results"] if r.get("stage") == "immediate"})
        return every_miner <= set(by_miner)

    wait_until(f"a verdict for every miner on {first}", judged, timeout=120, interval=1.0)
    assert by_miner["miner-c"]["weight"] < 0.01, by_miner["miner-c"]
    assert by_miner["miner-a"]["weight"] > 0.1 and by_miner["miner-b"]["weight"] > 0.1
    # the outside miner (its own package, features and model family) and the miner written from the
    # protocol document alone pass integrity in full and earn a weight
    for outside in ("miner-d", "doc-miner"):
        assert by_miner[outside]["weight"] > 0.05, by_miner[outside]
        assert by_miner[outside]["passed_integrity"] and by_miner[outside]["integrity_score"] == pytest.approx(
            0.2, abs=1e-6
        ), by_miner[outside]

    # each miner's page, from the warehouse: no ground truth yet (labels come at date + tau), its verdicts
    page = httpx.get(f"{demo.gateway_url}/dashboard/miners/doc-miner", timeout=30)
    assert page.status_code == 200, page.text
    assert "No ground truth yet" in page.text and page.text.count("<svg") == 1 and first.isoformat() in page.text

    # a plain Avro subscriber (confluent-kafka + the gateway's registry API) sees the same ensemble
    received = _subscribe(demo, env, f"subscriber-{namespace}")
    first_v1 = {r["alert_id"]: r["ensemble_score"] for r in received if r["processing_date"] == first.isoformat()}
    assert first_v1 == pytest.approx(before)

    # replay the first date from the score topics: version 2, identical scores, second date untouched
    _replay(first, "scores", env, tmp_path)
    demo.wait_for_ensembles((first,), min_version=2, timeout=180)
    after = _scores(demo, first)
    assert after["version"] == 2
    assert {s["alert_id"]: s["ensemble_score"] for s in after["ensemble_scores"]} == before
    assert demo.available()[second.isoformat()] == 1

    # replay the second date from the SOT: miners re-score, version 2, the same scores
    second_v1 = {s["alert_id"]: s["ensemble_score"] for s in _scores(demo, second)["ensemble_scores"]}
    _replay(second, "sot", env, tmp_path)
    demo.wait_for_ensembles((second,), min_version=2, timeout=180)
    again = _scores(demo, second)
    assert again["version"] == 2
    assert {s["alert_id"]: s["ensemble_score"] for s in again["ensemble_scores"]} == second_v1
    assert demo.available()[first.isoformat()] == 2
    # the document miner scored the operator's signed repeat of the second date again, as the document says
    submitted = (demo.processes.log_dir / "doc-miner.log").read_text().count(f"submitted {second.isoformat()}")
    assert submitted == 2
    document_miner.terminate()  # a clean stop: it withdraws and exits 0
    assert document_miner.wait(timeout=60) == 0
