"""A group of named ``riskstream`` subprocesses with one log file each, stopped together.

with ProcessGroup(log_dir, env) as group:
    group.start("validator", ["validator", "worker"], VALIDATOR_DEADLINE_S="60")
    group.check()            # raises if any process died
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from streams.errors import StackError
from streams.stack import stop_process_group


@dataclass
class _Running:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


class ProcessGroup:
    """Start ``riskstream <args>`` processes in their own process groups; stop them all on exit."""

    def __init__(self, log_dir: Path, env: dict[str, str], cwd: Path | None = None) -> None:
        self.log_dir = log_dir
        self.env = env
        self.cwd = cwd
        self._running: dict[str, _Running] = {}

    def start(self, name: str, args: list[str], **extra_env: str) -> subprocess.Popen[bytes]:
        if name in self._running and self._running[name].process.poll() is None:
            msg = f"process {name} is already running"
            raise StackError(msg)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**self.env, **extra_env},
                cwd=self.cwd,
                start_new_session=True,
            )
        self._running[name] = _Running(name, process, log)
        return process

    def run(self, name: str, args: list[str], timeout: float = 600.0, **extra_env: str) -> None:
        """Run a command to completion, raising with the tail of its log if it fails."""
        process = self.start(name, args, **extra_env)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_process_group(process.pid)
            code = -1
        if code != 0:
            msg = f"`riskstream {' '.join(args)}` failed ({code}):\n{self.tail(name)}"
            raise StackError(msg)

    def kill(self, name: str, hard: bool = False) -> None:
        running = self._running.pop(name, None)
        if running is None:
            return
        if hard:
            os.killpg(running.process.pid, 9)
            running.process.wait(10)
        else:
            stop_process_group(running.process.pid, timeout=15)
            running.process.poll()

    def peak_rss_mb(self) -> dict[str, float]:
        """Peak resident memory (VmHWM) of each running process, in MiB (Linux /proc)."""
        return self._memory("VmHWM:")

    def rss_mb(self) -> dict[str, float]:
        """Current resident memory (VmRSS) of each running process, in MiB (Linux /proc)."""
        return self._memory("VmRSS:")

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU time so far of each running process, in seconds (Linux /proc)."""
        found: dict[str, float] = {}
        for name, running in self._running.items():
            if running.process.poll() is None and (value := proc_cpu_seconds(running.process.pid)) is not None:
                found[name] = value
        return found

    def _memory(self, field: str) -> dict[str, float]:
        found: dict[str, float] = {}
        for name, running in self._running.items():
            if running.process.poll() is not None:
                continue
            value = proc_memory_mb(running.process.pid, field)
            if value is not None:
                found[name] = value
        return found

    def tail(self, name: str, lines: int = 20) -> str:
        log = self.log_dir / f"{name}.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check(self) -> None:
        """Raise if a long-running process died."""
        for running in self._running.values():
            code = running.process.poll()
            if code is not None and code != 0:
                msg = f"{running.name} exited with {code}:\n{self.tail(running.name)}"
                raise StackError(msg)

    def stop(self) -> None:
        for name in reversed(list(self._running)):
            self.kill(name)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def proc_memory_mb(pid: int, field: str = "VmRSS:") -> float | None:
    """One memory line of /proc/<pid>/status in MiB (None when the process is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return None


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of /proc/<pid>/stat (all threads), in seconds (None when the process is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until(what: str, check: Callable[[], object], timeout: float, interval: float = 0.5) -> None:
    """Poll ``check()`` until it is truthy, or raise ``StackError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout:.0f}s waiting for {what}"
            raise StackError(msg)
        time.sleep(interval)
