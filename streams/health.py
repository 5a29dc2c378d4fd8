"""Honest health for every service: broker reachability, lag, last progress, and a status code.

Each service keeps one ``Health``, runs ``watch_broker`` beside its work (a metadata request
every few seconds) and answers ``GET /health`` with ``Health.report()``: 200 while it can do
its job, 503 once the broker has been unreachable longer than ``max_unreachable_s`` or a
service-specific check says it is stuck. Services that have no web server of their own serve it
with ``HealthServer`` (a minimal asyncio HTTP server that ``/metrics`` can share) and announce
the URL under ``<home>/services/`` so that ``riskstream stack status`` can ask every one.

    health = Health("miner-a", max_unreachable_s=20)
    task = asyncio.create_task(watch_broker(health, servers))
    async with HealthServer({"/health": health.http_answer}, port=0) as server:
        announce(home, "miner-a", server.url)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.errors import KafkaError
from streams.kafka_admin import list_topics

log = logging.getLogger(__name__)
Answer = tuple[int, str, bytes]  # status, content type, body
Check = Callable[[], str | None]  # a reason the service is stuck, or None


@dataclass(slots=True)
class Health:
    """What one service knows about itself, updated as it works."""

    service: str
    max_unreachable_s: float = 20.0
    started_at: float = field(default_factory=time.time)
    broker_ok_at: float | None = None
    broker_error: str | None = None
    unreachable_since: float | None = None  # monotonic; None while the broker answers
    progress_at: float | None = None  # unix time of the last unit of work done
    progress: str = ""
    checks: list[Check] = field(default_factory=list)
    details: list[Callable[[], Mapping[str, Any]]] = field(default_factory=list)

    def broker_up(self) -> None:
        if self.unreachable_since is not None:
            log.warning("%s: broker reachable again after %.0fs", self.service, self.unreachable_for())
        self.broker_ok_at, self.broker_error, self.unreachable_since = time.time(), None, None

    def broker_down(self, error: str) -> None:
        if self.unreachable_since is None:
            self.unreachable_since = time.monotonic()
            log.warning("%s: broker unreachable: %s", self.service, error)
        self.broker_error = error

    def unreachable_for(self) -> float:
        return 0.0 if self.unreachable_since is None else time.monotonic() - self.unreachable_since

    def progressed(self, what: str) -> None:
        self.progress_at, self.progress = time.time(), what

    def report(self) -> tuple[int, dict[str, Any]]:
        now = time.time()
        problems: list[str] = []
        down = self.unreachable_for()
        if self.unreachable_since is not None and down > self.max_unreachable_s:
            problems.append(f"broker unreachable for {down:.0f}s (limit {self.max_unreachable_s:.0f}s)")
        for check in self.checks:
            reason = check()
            if reason:
                problems.append(reason)
        answer: dict[str, Any] = {
            "service": self.service,
            "status": "unavailable" if problems else "ok",
            "problems": problems,
            "broker": {
                "reachable": self.unreachable_since is None and self.broker_ok_at is not None,
                "unreachable_for_s": round(down, 1),
                "last_ok_s_ago": None if self.broker_ok_at is None else round(now - self.broker_ok_at, 1),
                "error": self.broker_error,
            },
            "last_progress": {
                "s_ago": None if self.progress_at is None else round(now - self.progress_at, 1),
                "what": self.progress,
            },
            "uptime_s": round(now - self.started_at, 1),
        }
        for detail in self.details:
            answer |= dict(detail())
        return (503 if problems else 200), answer

    async def http_answer(self) -> Answer:
        status, body = self.report()
        return status, "application/json", json.dumps(body, default=str).encode()


async def watch_broker(health: Health, bootstrap_servers: str, interval_s: float = 2.0) -> None:
    """Ask the broker for metadata every ``interval_s`` until cancelled; record what it says."""
    while True:
        try:
            await asyncio.to_thread(list_topics, bootstrap_servers, min(interval_s, 3.0))
        except KafkaError as exc:
            health.broker_down(str(exc))
        else:
            health.broker_up()
        await asyncio.sleep(interval_s)


Route = Callable[[], Awaitable[Answer]]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error", 503: "Unavailable"}


class HealthServer:
    """A minimal HTTP/1.1 server on loopback for ``/health`` (and ``/metrics``): GET only, one answer per connection."""

    def __init__(self, routes: Mapping[str, Route], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.routes = dict(routes)
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._answering: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> HealthServer:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._answering:  # connections being answered: let them finish (each is bounded by its timeouts)
            await asyncio.wait(set(self._answering), timeout=10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)
        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            while (await asyncio.wait_for(reader.readline(), 5.0)) not in (b"\r\n", b"\n", b""):
                pass  # headers: nothing here needs them
            method, path = (line.decode("latin-1").split() + ["", ""])[:2]
            route = self.routes.get(path.split("?", 1)[0])
            if method != "GET":
                status, kind, body = 405, "text/plain", b"GET only\n"
            elif route is None:
                status, kind, body = 404, "text/plain", b"not found\n"
            else:
                try:
                    status, kind, body = await route()
                except Exception as exc:  # a broken page must not take the server down
                    log.warning("health route %s failed: %s", path, exc)
                    status, kind, body = 500, "text/plain", f"{type(exc).__name__}\n".encode()
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def services_dir(home: Path) -> Path:
    return home / "services"


def announce(home: Path, service: str, url: str) -> Path:
    """Tell ``riskstream stack status`` where this process answers ``/health``."""
    folder = services_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{service}.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"service": service, "url": url, "pid": os.getpid()}))
    os.replace(temporary, path)
    return path


def withdraw(path: Path) -> None:
    with contextlib.suppress(OSError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    service: str
    url: str
    status: int | None  # None: no answer
    body: dict[str, Any]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ask_services(home: Path, timeout: float = 3.0) -> list[ServiceHealth]:
    """The health of every announced service; entries of processes that are gone are removed."""
    import httpx

    found: list[ServiceHealth] = []
    for path in sorted(services_dir(home).glob("*.json")):
        try:
            entry = json.loads(path.read_text())
            service, url, pid = str(entry["service"]), str(entry["url"]), int(entry["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not _alive(pid):
            path.unlink(missing_ok=True)
            continue
        try:
            answer = httpx.get(f"{url}/health", timeout=timeout)
            body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
            found.append(ServiceHealth(service, url, answer.status_code, body))
        except (httpx.HTTPError, ValueError) as exc:
            found.append(ServiceHealth(service, url, None, {"error": str(exc)}))
    return found
