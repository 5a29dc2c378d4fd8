"""The gateway's wiring point: the only place that opens ClickHouse and starts the warehouse sink.

app = create_app(GatewaySettings())
app.run(host="127.0.0.1", port=9000, single_process=True, access_log=False)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse

from gateway.cache import AnswerCache
from gateway.errors import GatewayError
from gateway.metrics import GatewayMetrics
from gateway.queries import WarehouseReader
from gateway.ranking import RankingCache
from gateway.registry_api import registry_blueprint
from gateway.routes import add_routes, json_answer
from gateway.settings import GatewaySettings
from streams.codec import AvroCodec
from streams.schema_registry import FileSchemaRegistry, registry_from_url
from streams.warehouse import WarehouseSink, connect, create_tables, run_sink

log = logging.getLogger(__name__)
SINK_RESTART_S = 5.0


async def _supervise_sink(
    app: Sanic[Any, Any], settings: GatewaySettings, sink: WarehouseSink, stop: asyncio.Event
) -> None:
    """Run the sink until stopped; if the broker or ClickHouse fails, report it on /health and restart."""
    while not stop.is_set():
        try:
            await run_sink(
                settings.stack, sink, stop, group_id=settings.sink_group_id, max_records=settings.sink_max_records
            )
        except Exception as exc:  # a failed sink must not take the read API down with it
            app.ctx.sink_error = f"{type(exc).__name__}: {exc}"
            log.exception("warehouse sink stopped, restarting in %.0fs", SINK_RESTART_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SINK_RESTART_S)
        else:
            app.ctx.sink_error = None


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
    """The Sanic app; ClickHouse clients and the sink start in ``before_server_start``."""
    app = Sanic(name)
    app.config.AUTO_EXTEND = False  # the OpenAPI document is ours; sanic-ext would add a second one
    app.config.ACCESS_LOG = settings.access_log
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.settings = settings
    app.ctx.metrics = GatewayMetrics()
    app.ctx.sink = None
    app.ctx.sink_error = None
    app.ctx.cache = AnswerCache(0)
    app.ctx.rankings = RankingCache(settings.ranking_cache_mb << 20)
    app.ctx.building = {}  # (request key, stamp) -> answer being built
    app.blueprint(registry_blueprint(FileSchemaRegistry.default()))
    add_routes(app, settings)
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
        app.ctx.client = await asyncio.to_thread(connect, settings.stack)
        await asyncio.to_thread(create_tables, app.ctx.client, settings.database)
        app.ctx.reader = WarehouseReader(app.ctx.client, settings.database)
        if settings.run_sink:
            codec = AvroCodec(registry_from_url(settings.stack.schema_registry_url))
            sink_client = await asyncio.to_thread(connect, settings.stack)
            sink = WarehouseSink(
                sink_client,
                settings.database,
                settings.stack.topics,
                codec,
                validator_key=settings.stack.validator_key,
                marker_timeout_s=settings.sink_marker_timeout_s,
            )
            app.ctx.sink = sink
            app.ctx.sink_stop = asyncio.Event()
            supervised = _supervise_sink(app, settings, sink, app.ctx.sink_stop)
            try:
                app.ctx.sink_task = app.add_task(supervised, name="warehouse_sink")
            except RuntimeError:  # served with create_server (serve_in_loop): Sanic has no loop of its own
                app.ctx.sink_task = asyncio.get_running_loop().create_task(supervised, name="warehouse_sink")
            app.ctx.cache = AnswerCache(settings.cache_max_bytes, generation=lambda: sink.stats.generation)
        else:
            app.ctx.cache = AnswerCache(settings.cache_max_bytes, ttl_s=settings.cache_ttl_s)

    @app.before_server_stop
    async def _close(app: Sanic[Any, Any]) -> None:
        task = getattr(app.ctx, "sink_task", None)
        if task is not None:
            app.ctx.sink_stop.set()
            _, running = await asyncio.wait({task}, timeout=15)  # does not raise if the task was cancelled
            if running:
                log.warning("warehouse sink did not stop in 15s: cancelling it")
                task.cancel()
        for client in (app.ctx.client, getattr(app.ctx.sink, "client", None)):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()

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
