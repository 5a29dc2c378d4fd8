"""The gateway's wiring point: the only place that opens ClickHouse (to read; the sink writes).

app = create_app(GatewaySettings())
app.run(host="127.0.0.1", port=9000, single_process=True, access_log=False)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse

from gateway.cache import AnswerCache
from gateway.errors import GatewayError
from gateway.metrics import GatewayMetrics
from gateway.miner_page import add_miner_page_route
from gateway.queries import WarehouseReader
from gateway.ranking import RankingCache
from gateway.routes import add_routes, json_answer
from gateway.schema_registry_api import schema_registry_blueprint
from gateway.settings import GatewaySettings
from gateway.weights import add_weights_route
from streams.health import Health, announce, withdraw
from streams.schema_registry import FileSchemaRegistry
from streams.warehouse_schema import connect

log = logging.getLogger(__name__)


class LazyClient:
    """A ClickHouse client opened on first use and again after a failed query.

    The warehouse may start after the gateway (or restart): until it answers, queries fail and
    the gateway answers 503, then it recovers by itself.
    """

    def __init__(self, open_client: Callable[[], Any]) -> None:
        self._open = open_client
        self._client: Any = None
        self._lock = threading.Lock()

    def _current(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._open()
            return self._client

    def query(self, *args: Any, **kwargs: Any) -> Any:
        client = self._current()
        try:
            return client.query(*args, **kwargs)
        except Exception:
            if not _answered(client):
                with self._lock:
                    if self._client is client:
                        self._client = None
                with contextlib.suppress(Exception):
                    client.close()
            raise

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


def _answered(client: Any) -> bool:
    """True if the warehouse still answers (the failed query was the query's fault, not the connection's)."""
    try:
        return bool(client.ping())
    except Exception:
        return False


async def _error_answer(request: Request, exc: Exception) -> HTTPResponse:
    if isinstance(exc, GatewayError):
        status, message = exc.status, str(exc)
    elif isinstance(exc, SanicException):
        status, message = exc.status_code, str(exc) or type(exc).__name__
    else:
        log.error("unhandled error on %s", request.path, exc_info=exc)
        status, message = 500, "internal error"
    return json_answer({"error": {"status": status, "message": message}}, status=status)


def create_app(settings: GatewaySettings, *, name: str = "riskstream_gateway") -> Sanic[Any, Any]:
    """The Sanic app; its ClickHouse client opens in ``before_server_start``."""
    app = Sanic(name)
    app.config.AUTO_EXTEND = False  # the OpenAPI document is ours; sanic-ext would add a second one
    app.config.ACCESS_LOG = settings.access_log
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.settings = settings
    app.ctx.metrics = GatewayMetrics()
    app.ctx.cache = AnswerCache(settings.cache_max_bytes, ttl_s=settings.cache_ttl_s)
    app.ctx.rankings = RankingCache(settings.ranking_cache_mb << 20)
    app.ctx.health = Health("gateway", settings.health_max_unreachable_s)
    app.ctx.building = {}  # (request key, stamp) -> answer being built
    app.blueprint(schema_registry_blueprint(FileSchemaRegistry.default()))
    add_routes(app, settings)
    add_weights_route(app, settings)
    add_miner_page_route(app, settings)
    app.error_handler.add(Exception, _error_answer)

    async def _started(request: Request) -> None:
        request.ctx.started = time.perf_counter()

    async def _observed(request: Request, response: HTTPResponse) -> None:
        started = getattr(request.ctx, "started", None)
        if started is not None:
            route = "/" + request.route.path if request.route else "unmatched"
            app.ctx.metrics.observe(route, response.status, time.perf_counter() - started)

    app.register_middleware(_started, "request")
    app.register_middleware(_observed, "response")  # type: ignore[arg-type]  # sanic's stub misses async middleware

    @app.before_server_start
    async def _open(app: Sanic[Any, Any]) -> None:
        app.ctx.announced = announce(settings.stack.home, "gateway", f"http://{settings.host}:{settings.port}")
        # reads only: a ClickHouse server, or the sink's read endpoint over its chDB path
        app.ctx.client = LazyClient(lambda: connect(settings.stack, reads=True))
        app.ctx.reader = WarehouseReader(app.ctx.client, settings.database)

    @app.before_server_stop
    async def _close(app: Sanic[Any, Any]) -> None:
        withdraw(app.ctx.announced)
        app.ctx.client.close()

    return app


@contextlib.asynccontextmanager
async def serve_in_loop(app: Sanic[Any, Any], host: str, port: int) -> AsyncIterator[None]:
    """Serve ``app`` on the running event loop (with its start/stop listeners) for the ``async with`` body."""
    server: Any = await app.create_server(host=host, port=port, access_log=False)  # sanic leaves it untyped
    if server is None:
        msg = f"cannot serve on {host}:{port}"
        raise GatewayError(msg)
    await server.startup()
    await server.before_start()
    await server.after_start()
    await server.start_serving()
    try:
        yield
    finally:
        await server.before_stop()
        for connection in list(server.connections):
            connection.close_if_idle()
        closing = server.close()  # a task that waits for the listener to close
        if closing is not None:
            await closing
        deadline = time.monotonic() + 5
        while server.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0)  # let the closed connections' tasks finish
        await server.after_stop()
