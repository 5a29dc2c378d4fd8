"""The gateway's wiring point: the only place that opens ClickHouse and starts the warehouse sink.

app = create_app(GatewaySettings())
app.run(host="127.0.0.1", port=9000, single_process=True, access_log=False)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
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
from gateway.weights import add_weights_route
from streams.codec import AvroCodec
from streams.health import Health, announce, watch_broker, withdraw
from streams.retention import apply_retention
from streams.schema_registry import FileSchemaRegistry, registry_from_url
from streams.warehouse import WarehouseError, WarehouseSink, connect, create_tables, run_sink

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


def _sink_problem(app: Sanic[Any, Any], settings: GatewaySettings) -> str | None:
    """Why the sink cannot be trusted to move the served data on, or None."""
    sink = app.ctx.sink
    if sink is None:
        return None
    task = getattr(app.ctx, "sink_task", None)
    if task is not None and task.done() and not app.ctx.sink_stop.is_set():
        return "warehouse sink stopped"
    if app.ctx.sink_error is not None:
        return f"warehouse sink failing: {app.ctx.sink_error}"
    now = time.monotonic()
    held: dict[Any, float] = app.ctx.markers_seen
    pending = set(sink.pending_markers())
    for key in list(held):
        if key not in pending:
            del held[key]
    for key in pending:
        held.setdefault(key, now)
    limit = 2 * settings.sink_marker_timeout_s + 10
    stuck = sorted(k for k, since in held.items() if now - since > limit)
    if stuck:
        return f"warehouse sink stuck: batch marker {stuck[0]} held for more than {limit:.0f}s"
    return None


async def _keep_window(settings: GatewaySettings, client: Any, stop: asyncio.Event) -> None:
    """Apply the warehouse retention every ``retention_interval_s`` while the sink runs."""
    while not stop.is_set():
        try:
            today = dt.datetime.now(dt.UTC).date()
            await asyncio.to_thread(
                apply_retention,
                client,
                settings.database,
                keep_days=settings.retention_days,
                tau_days=settings.tau_days,
                today=today,
            )
        except WarehouseError as exc:
            log.warning("warehouse retention failed, next try in %.0fs: %s", settings.retention_interval_s, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.retention_interval_s)


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
    app.ctx.markers_seen = {}  # held batch marker -> first seen held (monotonic)
    app.ctx.cache = AnswerCache(0)
    app.ctx.rankings = RankingCache(settings.ranking_cache_mb << 20)
    app.ctx.health = Health("gateway", settings.health_max_unreachable_s)
    app.ctx.health.checks.append(lambda: _sink_problem(app, settings))
    app.ctx.building = {}  # (request key, stamp) -> answer being built
    app.blueprint(registry_blueprint(FileSchemaRegistry.default()))
    add_routes(app, settings)
    add_weights_route(app, settings)
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
        if settings.run_sink:  # the read API needs no broker; the sink does
            app.ctx.broker_watch = asyncio.ensure_future(watch_broker(app.ctx.health, settings.stack.bootstrap_servers))
        app.ctx.announced = announce(settings.stack.home, "gateway", f"http://{settings.host}:{settings.port}")
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
            if settings.retention_days > 0:
                app.ctx.retention_task = asyncio.ensure_future(_keep_window(settings, sink_client, app.ctx.sink_stop))
        else:
            app.ctx.cache = AnswerCache(settings.cache_max_bytes, ttl_s=settings.cache_ttl_s)

    @app.before_server_stop
    async def _close(app: Sanic[Any, Any]) -> None:
        watch = getattr(app.ctx, "broker_watch", None)
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        withdraw(app.ctx.announced)
        retention = getattr(app.ctx, "retention_task", None)
        if retention is not None:
            app.ctx.sink_stop.set()
            await asyncio.wait({retention}, timeout=30)
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
