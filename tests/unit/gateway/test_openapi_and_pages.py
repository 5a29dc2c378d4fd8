"""The OpenAPI document matches the app's routes; the docs and dashboard pages render offline."""

from __future__ import annotations

import datetime as dt
import re

import schemathesis

from gateway.app import create_app
from gateway.dashboard import render_page
from gateway.openapi import build_spec, docs_page
from gateway.settings import GatewaySettings
from streams.settings import StackSettings


def test_every_documented_path_is_served_and_every_api_route_is_documented() -> None:
    app = create_app(GatewaySettings(stack=StackSettings(_env_file=None), run_sink=False), name="spec_check")
    served = {"/" + re.sub(r"<(\w+):\w+>", r"{\1}", r.path) for r in app.router.routes}
    spec = build_spec(1000, "0.1.0")
    documented = set(spec["paths"])
    assert documented <= served
    own = {"/", "/openapi.json", "/docs", "/metrics"}
    registry = {p for p in served if p.startswith(("/schemas", "/subjects"))}
    assert served - documented == own | registry


def test_spec_loads_in_schemathesis_and_limits_follow_settings() -> None:
    spec = build_spec(1234, "0.1.0")
    schema = schemathesis.openapi.from_dict(spec)
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) == len(spec["paths"])
    limit = next(
        p for p in spec["paths"]["/ensemble/scores/alerts/{date}"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert limit["schema"]["maximum"] == 1234


def test_docs_page_lists_every_endpoint() -> None:
    spec = build_spec(1000, "0.1.0")
    page = docs_page(spec)
    for path in spec["paths"]:
        assert f"GET {path}" in page
    assert "http" not in page.replace("/openapi.json", "")  # no external assets


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
