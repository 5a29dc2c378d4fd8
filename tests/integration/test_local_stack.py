"""The local stack command and the broker's durable log: restarts keep the port, topics and records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.kafka import BatchProducer
from streams.kafka_admin import ensure_topics, list_topics
from streams.kafka_readers import RangeReader
from streams.stack import free_port, start_broker, stop_process_group, wait_for_broker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _dead(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split()[2] == "Z"


def _read_all(servers: str, topic: str, partitions: int) -> list[bytes]:
    with RangeReader(servers, {topic: dict.fromkeys(range(partitions), 0)}) as reader:
        found = [m.value or b"" for batch in reader.batches(60) for m in batch]
    assert reader.reached_end
    return sorted(found)


def test_stack_down_and_up_keeps_the_port_topics_and_records(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKSTREAM_")}
    cli = [sys.executable, "-m", "streams.cli", "stack"]

    def run(action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, action], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    up = run("up")
    assert up.returncode == 0, up.stderr
    assert "broker: running (broker answers)" in up.stdout
    assert "storage: s3" in up.stdout
    record = json.loads((tmp_path / ".riskstream" / "stack.json").read_text())
    servers = f"127.0.0.1:{record['broker_port']}"
    assert f"RISKSTREAM_BOOTSTRAP_SERVERS={servers}" in (tmp_path / ".riskstream" / "stack.env").read_text()
    try:
        ensure_topics(servers, ["kept"], partitions=2)
        producer = BatchProducer(servers)
        for i in range(20):
            producer.send("kept", f"k{i}", f"v{i:02d}".encode())
        producer.flush()

        down = run("down")
        assert down.returncode == 0
        assert f"stopped broker pid {record['broker_pid']} and S3 server pid {record['s3_pid']}" in down.stdout
        assert _dead(record["broker_pid"]) and _dead(record["s3_pid"])
        status = run("status")
        assert status.returncode == 1 and "broker: stopped" in status.stdout
        assert "was not running" in run("down").stdout  # says what it did, not what it assumed

        again = run("up")
        assert again.returncode == 0, again.stderr
        assert f"bootstrap_servers: {servers}" in again.stdout  # the recorded port, not a new one
        assert "kept" in list_topics(servers)
        assert _read_all(servers, "kept", 2) == sorted(f"v{i:02d}".encode() for i in range(20))
    finally:
        run("down")


def test_status_is_stopped_when_the_broker_does_not_answer(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKSTREAM_")}
    home = tmp_path / ".riskstream"
    home.mkdir()
    port = free_port()
    silent = subprocess.Popen(  # a process on the recorded port that speaks no Kafka
        [sys.executable, "-c", f"import socket,time; s=socket.socket(); s.bind(('127.0.0.1',{port})); time.sleep(60)"],
        start_new_session=True,
    )
    try:
        record = {"storage": "memory", "broker_port": port, "broker_pid": silent.pid}
        (home / "stack.json").write_text(json.dumps(record))
        status = subprocess.run(
            [sys.executable, "-m", "streams.cli", "stack", "status"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert status.returncode == 1
        assert "does not answer a metadata request" in status.stdout
    finally:
        stop_process_group(silent.pid)


def test_a_producer_survives_a_broker_that_lost_its_log(tmp_path: Path) -> None:
    """A memory broker restarted on the same port forgets the producer id: the producer is recreated."""
    port = free_port()
    servers = f"127.0.0.1:{port}"
    broker = start_broker(port, tmp_path / "broker.log")
    try:
        wait_for_broker(servers)
        ensure_topics(servers, ["t"], partitions=1)
        producer = BatchProducer(servers)
        for i in range(5):
            producer.send("t", "k", f"before{i}".encode())
        producer.flush()
        stop_process_group(broker.pid)
        broker = start_broker(port, tmp_path / "broker.log")
        wait_for_broker(servers)
        ensure_topics(servers, ["t"], partitions=1)
        for i in range(5):
            producer.send("t", "k", f"after{i}".encode())
        producer.flush(timeout=90)  # would raise on OUT_OF_ORDER_SEQUENCE_NUMBER / UNKNOWN_PRODUCER_ID
        got = _read_all(servers, "t", 1)
        assert [v for v in got if v.startswith(b"after")] == [f"after{i}".encode() for i in range(5)]
    finally:
        stop_process_group(broker.pid)
