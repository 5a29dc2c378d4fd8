"""Restart the broker while the services are idle: they reconnect and the next date completes.

The broker keeps its log in S3 (moto's server), as a durable deployment would, so topics,
records and committed offsets survive the restart; the services are never restarted.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from ops.demo import Demo, DemoPlan, MinerPlan, isolated_run
from streams.stack import free_port, start_broker, stop_process_group, wait_for_broker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def durable_broker(s3_endpoint: str, s3_credentials: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    bucket = f"tansu-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=s3_credentials["region"],
        aws_access_key_id=s3_credentials["access_key_id"],
        aws_secret_access_key=s3_credentials["secret_access_key"],
    ).create_bucket(Bucket=bucket)
    env = {
        **os.environ,
        "AWS_ENDPOINT": s3_endpoint,
        "AWS_ACCESS_KEY_ID": s3_credentials["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": s3_credentials["secret_access_key"],
        "AWS_DEFAULT_REGION": s3_credentials["region"],
        "AWS_ALLOW_HTTP": "true",
    }
    port = free_port()
    processes = []

    def start() -> str:
        processes.append(start_broker(port, tmp_path / "broker.log", storage=f"s3://{bucket}/", env=env))
        wait_for_broker(f"127.0.0.1:{port}")
        return f"127.0.0.1:{port}"

    def stop() -> None:
        stop_process_group(processes[-1].pid)

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for process in processes:
        stop_process_group(process.pid)


def test_services_reconnect_after_a_broker_restart(durable_broker: Any, tmp_path: Path) -> None:
    bootstrap = durable_broker()
    stack, env = isolated_run(tmp_path / "home", bootstrap)
    plan = DemoPlan.for_today(
        days=2, history=2, alerts=200, addresses=1_000, flows=8_000, clusters=10, deadline_s=60,
        gateway_port=free_port(),
    )  # fmt: skip
    plan = dataclasses.replace(plan, miners=(MinerPlan("miner-a", "honest-a"), MinerPlan("miner-b", "honest-b")))
    first, second = plan.days

    with Demo(plan, stack, env, cwd=tmp_path) as demo:
        demo.prepare_history()
        demo.train_miners()
        demo.start_services()
        demo.publish_days((first,))
        demo.wait_for_ensembles((first,), timeout=240)

        durable_broker.stop()  # every service is idle, connected to a broker that goes away
        durable_broker()  # same port, same durable log

        demo.publish_days((second,))
        demo.wait_for_ensembles((second,), timeout=300)
        demo.processes.check()  # nobody crashed on the way
        assert demo.available() == {first.isoformat(): 1, second.isoformat(): 1}
