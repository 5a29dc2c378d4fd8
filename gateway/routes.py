"""The gateway's endpoints: parse and check parameters, read the warehouse, answer orjson."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import orjson
from sanic import Request, Sanic
from sanic.response import HTTPResponse, html, raw
from swagger_ui_bundle import swagger_ui_path

from gateway import queries
from gateway.dashboard import render_page
from gateway.errors import GatewayError, NotFoundError
from gateway.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gateway.openapi import DOCS_ASSETS, build_spec, docs_page
from gateway.params import (
    parse_choice,
    parse_date,
    parse_date_or_latest,
    parse_int,
    parse_min_score,
    parse_miner_id,
    parse_network,
    parse_order,
    parse_page,
    reject_unknown,
)
from gateway.queries import Kind
from gateway.settings import GatewaySettings
from streams.schema_registry import FileSchemaRegistry

JSON = "application/json"
API_VERSION = "1"


def dumps(payload: Any) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)


def json_answer(payload: Any, status: int = 200) -> HTTPResponse:
    return raw(dumps(payload), status=status, content_type=JSON)


async def _cached(
    request: Request, build: Callable[[], Awaitable[Any]], allowed: Sequence[str], *parsed: object
) -> HTTPResponse:
    """Answer from the cache when the warehouse has not changed since the same request was built.

    The key is the route and the *parsed* values (``parsed``); a parameter outside ``allowed`` is
    a 400, so junk parameters can neither defeat the cache nor be silently ignored. Identical
    requests that arrive while an answer is being built wait for that one build.
    """
    reject_unknown(request.args, allowed)
    ctx = request.app.ctx
    key = "|".join([request.name or request.path, *(repr(p) for p in parsed)])
    stamp = ctx.cache.stamp()
    body = ctx.cache.get(key, stamp)
    if body is not None:
        ctx.metrics.cache_hits.inc()
        return raw(body, content_type=JSON)
    ctx.metrics.cache_misses.inc()
    if not ctx.cache.enabled:
        return raw(dumps(await build()), content_type=JSON)
    building: dict[tuple[str, int], asyncio.Future[bytes]] = ctx.building
    pending = building.get((key, stamp))
    if pending is not None:
        return raw(await asyncio.shield(pending), content_type=JSON)
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    building[(key, stamp)] = future
    try:
        body = dumps(await build())
    except asyncio.CancelledError:
        future.cancel()
        raise
    except Exception as exc:
        future.set_exception(exc)
        future.exception()  # marked retrieved: the waiters re-raise it
        raise
    else:
        future.set_result(body)
        ctx.cache.put(key, stamp, body)
    finally:
        del building[(key, stamp)]
    return raw(body, content_type=JSON)


def _release() -> str:
    try:
        return package_version("riskstream")
    except PackageNotFoundError:
        return "0+unknown"


def add_routes(app: Sanic[Any, Any], settings: GatewaySettings) -> None:  # noqa: C901 one closure per endpoint
    spec_body = dumps(build_spec(settings.max_limit, _release()))
    docs = docs_page("riskstream gateway API")
    app.static(DOCS_ASSETS, swagger_ui_path, name="swagger_ui")  # Swagger UI's own files, no CDN
    schema_ids = {s.name: s.schema_id for s in FileSchemaRegistry.default().all()}

    def reader(request: Request) -> queries.WarehouseReader:
        found: queries.WarehouseReader | None = getattr(request.app.ctx, "reader", None)
        if found is None:
            msg = "the warehouse is not open yet"
            raise queries.WarehouseUnavailableError(msg)
        return found

    def ensemble(kind: Kind, default_order: str) -> Callable[[Request, str], Coroutine[Any, Any, HTTPResponse]]:
        async def handler(request: Request, date: str) -> HTTPResponse:
            day = parse_date_or_latest(date)
            args = request.args
            network = parse_network(args, settings.network)
            page = parse_page(args, settings.default_limit, settings.max_limit)
            min_score = parse_min_score(args)
            order = parse_order(args, default_order, f"{kind}_id")
            return await _cached(
                request,
                lambda: queries.ensemble_page(
                    reader(request), kind, network, day, page, order, min_score, tau_days=settings.tau_days,
                    rankings=request.app.ctx.rankings, encode=dumps,
                    stamp=request.app.ctx.cache.stamp() if request.app.ctx.cache.stamped else None,
                ),
                ("network", "limit", "offset", "min_score", "order"),
                day, network, page, order, min_score,
            )  # fmt: skip

        return handler

    app.add_route(ensemble("alert", "alert_id"), "/ensemble/scores/alerts/<date:str>", name="alert_scores")
    app.add_route(ensemble("alert", "rank"), "/ensemble/rankings/alerts/<date:str>", name="alert_rankings")
    app.add_route(ensemble("cluster", "cluster_id"), "/ensemble/scores/clusters/<date:str>", name="cluster_scores")

    @app.get("/submissions/<date:str>")
    async def submissions(request: Request, date: str) -> HTTPResponse:
        day, network = parse_date(date), parse_network(request.args, settings.network)
        return await _cached(
            request, lambda: queries.submissions_of_date(reader(request), network, day), ("network",), day, network
        )

    @app.get("/submissions/<date:str>/<miner_id:str>")
    async def submission(request: Request, date: str, miner_id: str) -> HTTPResponse:
        day, miner = parse_date(date), parse_miner_id(miner_id)
        network = parse_network(request.args, settings.network)
        kind: Kind = (
            "cluster" if parse_choice(request.args, "kind", ("alert", "cluster"), "alert") == "cluster" else "alert"
        )
        page = parse_page(request.args, settings.default_limit, settings.max_limit)
        return await _cached(
            request,
            lambda: queries.submission_of_miner(reader(request), network, day, miner, kind, page),
            ("network", "kind", "limit", "offset"),
            day, miner, network, kind, page,
        )  # fmt: skip

    @app.get("/validation/<date:str>")
    async def validation(request: Request, date: str) -> HTTPResponse:
        day, network = parse_date(date), parse_network(request.args, settings.network)
        return await _cached(
            request, lambda: queries.validation_of_date(reader(request), network, day), ("network",), day, network
        )

    @app.get("/validation/<date:str>/<miner_id:str>")
    async def validation_of_miner(request: Request, date: str, miner_id: str) -> HTTPResponse:
        day, miner = parse_date(date), parse_miner_id(miner_id)
        network = parse_network(request.args, settings.network)
        return await _cached(
            request,
            lambda: queries.validation_of_miner(reader(request), network, day, miner),
            ("network",),
            day, miner, network,
        )  # fmt: skip

    @app.get("/miners/rankings")
    async def miner_rankings(request: Request) -> HTTPResponse:
        network = parse_network(request.args, settings.network)
        days = parse_int(request.args, "days", 30, 1, 3660)
        return await _cached(
            request, lambda: queries.miner_rankings(reader(request), network, days), ("network", "days"), network, days
        )

    @app.get("/miners/<miner_id:str>/performance")
    async def miner_performance(request: Request, miner_id: str) -> HTTPResponse:
        miner, network = parse_miner_id(miner_id), parse_network(request.args, settings.network)
        days = parse_int(request.args, "days", 90, 1, 3660)
        return await _cached(
            request,
            lambda: queries.miner_performance(reader(request), network, miner, days),
            ("network", "days"),
            miner, network, days,
        )  # fmt: skip

    @app.get("/dates/available")
    async def dates_available(request: Request) -> HTTPResponse:
        network = parse_network(request.args, settings.network)

        async def build() -> dict[str, Any]:
            return {"network": network, "dates": await queries.available_dates(reader(request), network)}

        return await _cached(request, build, ("network",), network)

    @app.get("/dates/latest")
    async def dates_latest(request: Request) -> HTTPResponse:
        network = parse_network(request.args, settings.network)

        async def build() -> dict[str, Any]:
            dates = await queries.available_dates(reader(request), network)
            if not dates:
                msg = f"no ensemble on network {network!r} yet"
                raise NotFoundError(msg)
            return dates[0]

        return await _cached(request, build, ("network",), network)

    @app.get("/health")
    async def health(request: Request) -> HTTPResponse:
        """Warehouse reachability: 503 when the gateway cannot answer (the sink reports its own health)."""
        ctx = request.app.ctx
        status, answer = ctx.health.report()
        answer |= {"warehouse": "ok", "broker": None}  # no broker here: the gateway only reads ClickHouse
        try:
            await queries.ping(reader(request))
        except GatewayError as exc:
            answer["warehouse"] = str(exc)
            answer["problems"].append(f"warehouse: {exc}")
            status = 503
        if status != 200:
            answer["status"] = "unavailable"
        return json_answer(answer, status=status)

    @app.get("/version")
    async def version(request: Request) -> HTTPResponse:
        return json_answer({"name": "riskstream", "version": _release(), "api": API_VERSION, "schemas": schema_ids})

    @app.get("/metrics")
    async def metrics(request: Request) -> HTTPResponse:
        return raw(request.app.ctx.metrics.render(), content_type=METRICS_CONTENT_TYPE)

    @app.get("/openapi.json")
    async def openapi(request: Request) -> HTTPResponse:
        return raw(spec_body, content_type=JSON)

    @app.get("/docs")
    async def docs_html(request: Request) -> HTTPResponse:
        return html(docs)

    @app.get("/")
    async def index(request: Request) -> HTTPResponse:
        network = parse_network(request.args, settings.network)
        source = reader(request)
        rankings = await queries.miner_rankings(source, network, 30)
        hist = await queries.score_histogram(source, network)
        calibration = await queries.ground_truth_by_miner(source, network)
        return html(render_page(network, rankings, hist, calibration, dt.datetime.now(dt.UTC)))
