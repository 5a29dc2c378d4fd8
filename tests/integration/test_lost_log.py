"""A broker that lost its log (memory engine restarted) under the validator: one clear line, never a wrong ensemble."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ops.demo import isolated_run
from ops.processes import wait_until
from streams.stack import free_port, start_broker, stop_process_group, wait_for_broker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _validator(env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "validator", "worker", "--deadline", "30"],
            env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def test_the_validator_stops_with_one_line_on_a_broker_that_lost_its_log(tmp_path: Path) -> None:
    port = free_port()
    servers = f"127.0.0.1:{port}"
    broker = start_broker(port, tmp_path / "broker.log")
    validator = None
    try:
        wait_for_broker(servers)
        stack, env = isolated_run(tmp_path / "home", servers, namespace="lost.")
        env["VALIDATOR_EPOCH_CHECK_S"] = "2"
        tokens = stack.home / "validator"
        log = tmp_path / "validator.log"
        validator = _validator(env, log, tmp_path)
        wait_until("the validator to mark the broker log", lambda: any(tokens.glob("broker-epoch-*")), timeout=120)
        time.sleep(3)  # at least one periodic check that finds the token

        stop_process_group(broker.pid)  # the memory engine forgets everything
        broker = start_broker(port, tmp_path / "broker.log")
        wait_for_broker(servers)
        assert validator.wait(timeout=120) == 2, log.read_text()[-3000:]
        text = log.read_text()
        assert "lost the log this validator's tables were built on" in text
        assert "Traceback" not in text

        again = _validator(env, tmp_path / "again.log", tmp_path)  # a restart refuses to run on the new log
        assert again.wait(timeout=120) == 2
        lines = [line for line in (tmp_path / "again.log").read_text().splitlines() if "error" in line]
        assert len(lines) == 1 and "the broker lost its data" in lines[0], lines
    finally:
        if validator is not None and validator.poll() is None:
            stop_process_group(validator.pid)
        stop_process_group(broker.pid)
