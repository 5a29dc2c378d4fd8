"""Session fixtures for the real local stack: a Tansu broker, a moto S3 server, chDB.

Each test gets its own topic namespace and consumer group. Without ``CI=true`` a missing
component skips the integration tests that need it; with ``CI=true`` it fails them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams.errors import StackError
from streams.settings import StackSettings
from streams.stack import free_port, start_broker, stop_process_group, wait_for_broker
from streams.topics import TopicNames

IN_CI = os.environ.get("CI", "").lower() == "true"


def _missing(what: str, exc: BaseException) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI: {exc}")
    pytest.skip(f"{what} unavailable: {exc}")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """bootstrap_servers of a Tansu broker for the whole session."""
    port = free_port()
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    try:
        process = start_broker(port, log)
        wait_for_broker(f"127.0.0.1:{port}")
    except StackError as exc:
        _missing("the tansu broker", exc)
    yield f"127.0.0.1:{port}"
    stop_process_group(process.pid)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """http endpoint of a moto S3 server on loopback."""
    binary = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if binary is None:
        _missing("moto_server", FileNotFoundError("moto_server not on PATH"))
    port = free_port()
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1.0)
            break
        except httpx.HTTPError as exc:
            if time.monotonic() > deadline or process.poll() is not None:
                stop_process_group(process.pid)
                _missing("moto S3 server", exc)
            time.sleep(0.2)
    yield url
    stop_process_group(process.pid)


@pytest.fixture(scope="session")
def s3_credentials() -> dict[str, Any]:
    return {"region": "us-east-1", "access_key_id": "testing", "secret_access_key": "testing"}


@pytest.fixture(scope="session")
def clickhouse_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One chDB data path per session: chDB allows a single data path per process."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(scope="session")
def clickhouse(clickhouse_path: Path) -> Any:
    try:
        import clickhouse_connect

        client = clickhouse_connect.get_client(dsn=f"chdb://{clickhouse_path}")
    except Exception as exc:  # chDB import or start failure
        _missing("chDB", exc)
    return client


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def topics(namespace: str) -> TopicNames:
    return TopicNames(namespace)


@pytest.fixture
def group_id() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def stack_settings(broker: str, namespace: str, tmp_path: Path) -> StackSettings:
    """Connection settings pointing at the session broker, a temp file store and namespace."""
    return StackSettings(
        _env_file=None,
        home=tmp_path / "home",
        bootstrap_servers=broker,
        object_store_url=f"file://{tmp_path / 'store'}",
        clickhouse_url=f"chdb://{tmp_path / 'chdb'}",
        topic_namespace=namespace,
        topic_partitions=4,
    )


@pytest.fixture(autouse=True)
def _no_leftover_tasks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail an async test that leaves asyncio tasks running when it returns."""
    if not asyncio.iscoroutinefunction(getattr(request.node, "obj", None)):
        yield
        return
    leftovers: list[asyncio.Task[Any]] = []
    original = request.node.obj

    async def checked(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        current = asyncio.current_task()
        leftovers.extend(t for t in asyncio.all_tasks() if t is not current and not t.done())
        return result

    request.node.obj = checked
    yield
    request.node.obj = original
    for task in leftovers:
        task.cancel()
    assert not leftovers, f"test left {len(leftovers)} asyncio tasks running: {leftovers[:3]}"


@pytest.fixture
def warehouse_stack(stack_settings: StackSettings, clickhouse_path: Path) -> StackSettings:
    """Stack settings whose warehouse is the session's chDB path, read through a free loopback port."""
    return stack_settings.model_copy(
        update={
            "clickhouse_url": f"chdb://{clickhouse_path}",
            "warehouse_reads_url": f"http://127.0.0.1:{free_port()}",
        }
    )
