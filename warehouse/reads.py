"""The sink's HTTP endpoint: read-only ClickHouse HTTP interface over its chDB path, plus /metrics and /health.

chDB lets one process open a data path. In the embedded default that process is the sink, so it
also answers reads: any ClickHouse HTTP client (the gateway's clickhouse-connect, curl) sends a
query to ``POST /`` and gets ClickHouse's own output format back, exactly as from a ClickHouse
server, so gateways run the same code locally and in production, as many replicas as wanted.
Only reading statements run; an INSERT, DDL or SET is refused with ClickHouse's READONLY error.
With a ClickHouse server the endpoint serves only ``/metrics``, ``/health`` and ``/ping``.

    endpoint = SinkEndpoint("127.0.0.1", 8124, chdb_path="/data/ch", health=lambda: {"status": "ok"})
    endpoint.start(); ...; endpoint.stop()
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from streams.errors import WarehouseError

log = logging.getLogger(__name__)

# statements that only read; ClickHouse's HTTP interface has the same split under readonly=1
_READING = re.compile(
    r"^\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN)\b", re.I | re.S
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_READONLY = (
    "Code: 164. DB::Exception: Cannot execute query in readonly mode: the sink's endpoint only reads. (READONLY)"
)
MAX_QUERY_BYTES = 1 << 20


class _Engine:
    """A few chDB connections to one data path, each used by one request at a time."""

    def __init__(self, path: str, connections: int) -> None:
        import chdb

        # chDB compares engine paths literally: spell it as clickhouse-connect does (the real path)
        real = os.path.realpath(path)
        self._free: queue.Queue[tuple[Any, list[str]]] = queue.Queue()
        self._all = []
        for _ in range(connections):
            conn = chdb.connect(real)  # type: ignore[no-untyped-call]  # chdb ships no annotations
            self._all.append(conn)
            self._free.put((conn, ["default"]))

    @contextlib.contextmanager
    def connection(self) -> Iterator[tuple[Any, list[str]]]:
        held = self._free.get()
        try:
            yield held
        finally:
            self._free.put(held)

    def query(self, sql: str, fmt: str, params: dict[str, str], database: str | None) -> bytes:
        with self.connection() as (conn, current):
            wanted = database or "default"
            if current[0] != wanted:
                conn.query(f"USE {wanted}", "TabSeparated")
                current[0] = wanted
            result = conn.query(sql, fmt, params=params)
            return bytes(result.bytes() or b"")

    def close(self) -> None:
        for conn in self._all:
            with contextlib.suppress(Exception):
                conn.close()


class SinkEndpoint:
    """HTTP for the sink process: ClickHouse reads (embedded chDB only), ``/metrics``, ``/health``, ``/ping``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        chdb_path: str | None = None,
        health: Callable[[], dict[str, Any]] = lambda: {"status": "ok"},
        registries: Sequence[CollectorRegistry] = (REGISTRY,),
        connections: int = 4,
    ) -> None:
        self.engine = _Engine(chdb_path, connections) if chdb_path is not None else None
        self.health = health
        self.registries = tuple(registries)
        try:
            self._server = ThreadingHTTPServer((host, port), _handler(self))
        except OSError as exc:
            msg = f"the sink cannot listen on {host}:{port}: {exc}"
            raise WarehouseError(msg) from exc
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="sink-endpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)
        if self.engine is not None:
            self.engine.close()


def _handler(endpoint: SinkEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "riskstream-warehouse"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small answers, no 40 ms waits

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 the base class names it so
            log.debug("%s " + format, self.address_string(), *args)

        def _answer(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 http.server's naming
            path = urlsplit(self.path).path
            if path == "/ping":
                self._answer(200, b"Ok.\n", "text/plain; charset=UTF-8")
            elif path == "/metrics":
                text = b"".join(generate_latest(registry) for registry in endpoint.registries)
                self._answer(200, text, CONTENT_TYPE_LATEST)
            elif path == "/health":
                answer = endpoint.health()
                status = 200 if answer.get("status") == "ok" else 503
                self._answer(status, orjson.dumps(answer), "application/json")
            elif path == "/":
                self._query(b"")
            else:
                self._answer(404, b"not found\n", "text/plain; charset=UTF-8")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_QUERY_BYTES:
                self._answer(413, b"query too large\n", "text/plain; charset=UTF-8")
                return
            body = self.rfile.read(length)
            if urlsplit(self.path).path != "/":
                self._answer(404, b"not found\n", "text/plain; charset=UTF-8")
                return
            self._query(body)

        def _query(self, body: bytes) -> None:
            engine = endpoint.engine
            if engine is None:
                msg = b"the warehouse is a ClickHouse server: read from it, not from the sink\n"
                self._answer(404, msg, "text/plain; charset=UTF-8")
                return
            args = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
            if self.headers.get("Content-Encoding"):
                self._error(400, "Code: 1. DB::Exception: compressed queries are not supported here. (UNSUPPORTED)")
                return
            sql = "\n".join(part for part in (args.get("query", ""), body.decode("utf-8", "replace")) if part)
            database = args.get("database") or None
            if not _READING.match(sql):
                self._error(403, _READONLY, code="164")
                return
            if database is not None and not _IDENTIFIER.match(database):
                self._error(400, f"Code: 81. DB::Exception: bad database name {database!r}. (UNKNOWN_DATABASE)")
                return
            params = {k.removeprefix("param_"): v for k, v in args.items() if k.startswith("param_")}
            fmt = args.get("default_format") or "TabSeparated"
            try:
                data = engine.query(sql, fmt, params, database)
            except Exception as exc:  # chDB raises its own error types with ClickHouse's message
                self._error(500, str(exc))
                return
            self._answer(200, data, "application/octet-stream", X_ClickHouse_Format=fmt)

        def _error(self, status: int, message: str, code: str | None = None) -> None:
            found = re.search(r"Code: (\d+)", message)
            code = code or (found.group(1) if found else "1")
            self._answer(
                status, message.encode() + b"\n", "text/plain; charset=UTF-8", X_ClickHouse_Exception_Code=code
            )

    return Handler
