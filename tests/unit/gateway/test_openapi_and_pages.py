"""The OpenAPI document matches the app's routes; the docs and dashboard pages render offline."""

from __future__ import annotations

import datetime as dt
import re

import schemathesis
from swagger_ui_bundle import swagger_ui_path

from gateway.app import create_app
from gateway.dashboard import render_page
from gateway.openapi import DOCS_ASSETS, build_spec, docs_page
from gateway.settings import GatewaySettings
from streams.settings import StackSettings


def test_every_documented_path_is_served_and_every_api_route_is_documented() -> None:
    app = create_app(GatewaySettings(stack=StackSettings(_env_file=None)), name="spec_check")
    served = {"/" + re.sub(r"<(\w+):\w+>", r"{\1}", r.path) for r in app.router.routes}
    spec = build_spec(1000, "0.1.0")
    documented = set(spec["paths"])
    assert documented <= served and "/metrics" in documented
    own = {"/", "/openapi.json", "/docs"}
    registry = {p for p in served if p.startswith(("/schemas", "/subjects"))}
    assets = {p for p in served if p.startswith(f"{DOCS_ASSETS}/")}
    assert served - documented == own | registry | assets


def test_spec_loads_in_schemathesis_and_limits_follow_settings() -> None:
    spec = build_spec(1234, "0.1.0")
    schema = schemathesis.openapi.from_dict(spec)
    operations = [op.ok() for op in schema.get_all_operations()]  # type: ignore[union-attr]  # an Err fails the test
    assert len(operations) == len(spec["paths"])
    limit = next(
        p for p in spec["paths"]["/ensemble/scores/alerts/{date}"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert limit["schema"]["maximum"] == 1234


def test_docs_page_is_swagger_ui_from_local_files() -> None:
    page = docs_page("riskstream gateway API")
    assert 'url: "/openapi.json"' in page and "validatorUrl: null" in page  # no call to an online validator
    assert "http" not in page  # no CDN, no external asset
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and all(a.startswith(f"{DOCS_ASSETS}/") for a in assets)
    shipped = {p.name for p in swagger_ui_path.iterdir()}
    assert {a.removeprefix(f"{DOCS_ASSETS}/") for a in assets} <= shipped


async def test_docs_assets_are_served() -> None:
    from sanic import Sanic

    Sanic.test_mode = True
    app = create_app(GatewaySettings(stack=StackSettings(_env_file=None)), name="docs_assets")
    _, answer = await app.asgi_client.get(f"{DOCS_ASSETS}/swagger-ui-bundle.js")
    assert answer.status == 200 and b"SwaggerUIBundle" in answer.body[:1000]
    _, page = await app.asgi_client.get("/docs")
    assert page.status == 200 and b"swagger-ui" in page.body


def test_dashboard_renders_and_escapes() -> None:
    rankings = {
        "window_days": 30,
        "through_date": dt.date(2026, 3, 2),
        "miners": [
            {"rank": 1, "miner_id": "<b>m</b>", "mean_final_score": 0.8, "mean_immediate_score": 0.4,
             "latest_weight": 0.5, "days": 3, "ground_truth_days": 1, "failed_integrity_days": 0},
        ],
    }  # fmt: skip
    hist = {"processing_date": dt.date(2026, 3, 2), "version": 2, "counts": [5, 0, 3, 1]}
    calibration = [{"miner_id": "m1", "labelled_date": dt.date(2026, 2, 27), "metrics": {"brier": 0.1}}]
    page = render_page("ethereum", rankings, hist, calibration, dt.datetime(2026, 3, 3, tzinfo=dt.UTC))
    assert "&lt;b&gt;m&lt;/b&gt;" in page and "<b>m</b>" not in page
    assert page.count("<rect") == 4 and "9 alerts" in page and "brier" in page and "0.100" in page
    empty = render_page(
        "ethereum", {"window_days": 30, "through_date": None, "miners": []}, None, [], dt.datetime.now(dt.UTC)
    )
    assert "No validation results yet" in empty and "No ensemble yet" in empty and "No ground truth yet" in empty
