"""The miner page shows the stored results: figures, curves and reasons equal the warehouse rows."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import numpy as np
import pytest
from sanic import Sanic
from sanic_testing.testing import SanicASGITestClient

from gateway.app import _error_answer
from gateway.miner_page import add_miner_page_route, miner_page, render_miner_page
from gateway.settings import GatewaySettings
from streams.settings import StackSettings
from validator.ground_truth import ground_truth_metrics

D1, D2, D3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)
NOW = dt.datetime(2026, 3, 4, tzinfo=dt.UTC)
RNG = np.random.default_rng(3)
SCORES = RNG.random(400)
LABELS = (RNG.random(400) < SCORES * 0.5).astype(np.float64)
STORED = ground_truth_metrics(SCORES, LABELS, k=100)  # what the validator stores with the miner's tier 3
ENSEMBLE = ground_truth_metrics(np.clip(SCORES + 0.1 * RNG.standard_normal(400), 0, 1), LABELS, k=100)


def _performance_rows(labelled: bool) -> list[dict[str, Any]]:
    """As ``queries.miner_performance`` reads them (newest first)."""

    def row(day: dt.date, weight: float, immediate: float, final: float | None) -> dict[str, Any]:
        return {
            "processing_date": day, "version": 1, "immediate_score": immediate, "integrity_score": 0.2,
            "behaviour_score": immediate - 0.2, "ground_truth_score": None if final is None else final - immediate,
            "final_score": final, "weight": weight, "passed_integrity": True, "has_ground_truth": final is not None,
            "ground_truth_metrics": STORED if final is not None else {},
        }  # fmt: skip

    return [row(D3, 0.31, 0.45, None), row(D2, 0.27, 0.44, None), row(D1, 0.22, 0.43, 0.81 if labelled else None)]


VERDICTS = [
    {"processing_date": D2, "stage": "immediate", "version": 1, "weight": 0.27, "passed_integrity": True,
     "immediate_score": 0.44, "final_score": None, "reasons": ["latency 412 s: 0.03 of 0.04", "<late chunk>"]},
    {"processing_date": D1, "stage": "ground_truth", "version": 2, "weight": 0.22, "passed_integrity": True,
     "immediate_score": 0.43, "final_score": 0.81, "reasons": []},
]  # fmt: skip


class FakeReader:
    def __init__(self, labelled: bool) -> None:
        self.labelled = labelled
        self.asked: list[dict[str, Any]] = []

    async def rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        self.asked.append(params)
        if params.get("miner") not in ("miner-a", "ensemble"):
            return []
        if "days" in params:  # queries.miner_performance
            return _performance_rows(self.labelled)
        if "since" in params:  # queries.miner_verdicts
            return [v for v in VERDICTS if v["processing_date"] >= params["since"]]
        if params["miner"] == "ensemble" and params["date"] == D1 and self.labelled:  # queries.validation_of_miner
            return [{"miner_id": "ensemble", "stage": "ground_truth", "version": 2, "integrity_score": 0.0,
                     "behaviour_score": 0.0, "ground_truth_score": 0.4, "immediate_score": 0.0, "final_score": 0.4,
                     "weight": 1.0, "passed_integrity": True, "reasons": [], "metrics": ENSEMBLE}]  # fmt: skip
        return []


def _client(name: str, labelled: bool) -> tuple[SanicASGITestClient, FakeReader]:
    app = Sanic(name)
    app.config.AUTO_EXTEND = False
    add_miner_page_route(app, GatewaySettings(stack=StackSettings(_env_file=None), run_sink=False))
    app.error_handler.add(Exception, _error_answer)
    reader = FakeReader(labelled)
    app.ctx.reader = reader
    return SanicASGITestClient(app), reader


def test_the_page_data_equals_the_stored_results() -> None:
    performance = {"network": "ethereum", "miner_id": "miner-a", "history": _performance_rows(labelled=True)}
    page = miner_page(performance, VERDICTS, ENSEMBLE)
    assert [(d.processing_date, d.weight, d.final_score) for d in page.history] == [
        (D1, 0.22, 0.81), (D2, 0.27, None), (D3, 0.31, None),
    ]  # fmt: skip
    assert page.labelled_date == D1 and page.miner is not None and page.ensemble is not None
    # every non-empty reliability bin, exactly as stored; counts add up to the labelled alerts
    stored_bins = [b for b in range(10) if STORED[f"reliability_{b}_count"] > 0]
    assert [round(b.low * 10) for b in page.miner.reliability] == stored_bins
    for b in page.miner.reliability:
        n = round(b.low * 10)
        assert (b.count, b.mean_score, b.positive_rate) == (
            STORED[f"reliability_{n}_count"],
            STORED[f"reliability_{n}_mean_score"],
            STORED[f"reliability_{n}_positive_rate"],
        )
    assert sum(b.count for b in page.miner.reliability) == len(SCORES)
    assert page.miner.precision_recall == tuple(
        (float(k.rsplit("_", 1)[1]), v) for k, v in sorted(STORED.items()) if k.startswith("pr_precision_at_recall_")
    )
    assert len(page.miner.precision_recall) == 20 and page.miner.precision_recall[-1][0] == 1.0
    assert page.miner.figures["auc_pr"] == STORED["auc_pr"] and "reliability_0_count" not in page.miner.figures
    assert page.ensemble.figures["auc_pr"] == ENSEMBLE["auc_pr"]
    assert page.verdicts[0].reasons == ("latency 412 s: 0.03 of 0.04", "<late chunk>")


def test_the_page_renders_its_numbers_as_pictures_with_nothing_loaded_from_outside() -> None:
    performance = {"network": "ethereum", "miner_id": "miner-a", "history": _performance_rows(labelled=True)}
    html = render_miner_page(miner_page(performance, VERDICTS, ENSEMBLE), NOW)
    assert html.count("<svg") == 3  # over time, reliability, precision-recall
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # no CDN, no remote asset
    assert "<script src" not in html
    assert f"AUC-PR {STORED['auc_pr']:.3f}" in html and f"AUC-PR {ENSEMBLE['auc_pr']:.3f}" in html
    assert f"<td>{STORED['brier']:.3f}</td>" in html and "<td>0.810</td>" in html and "<td>0.310</td>" in html
    assert "&lt;late chunk&gt;" in html and "<late chunk>" not in html


async def test_a_miner_without_ground_truth_yet_gets_its_page() -> None:
    client, reader = _client("miner_page_fresh", labelled=False)
    _, answer = await client.get("/dashboard/miners/miner-a")
    assert answer.status == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert "No ground truth yet" in answer.text and answer.text.count("<svg") == 1
    assert "latency 412 s" in answer.text and "<td>0.270</td>" in answer.text
    assert reader.asked[1]["since"] == D1  # verdicts over the days shown
    assert not any(p.get("miner") == "ensemble" for p in reader.asked)  # no labelled date: no curves asked


async def test_the_route_draws_the_newest_labelled_date_and_refuses_bad_requests() -> None:
    client, reader = _client("miner_page_labelled", labelled=True)
    _, answer = await client.get("/dashboard/miners/miner-a", params={"days": "30"})
    assert answer.status == 200, answer.text
    assert answer.text.count("<svg") == 3 and f"Labelled date {D1.isoformat()}" in answer.text
    assert reader.asked[0]["days"] == 30
    assert reader.asked[-1] == {"network": "ethereum", "date": D1, "miner": "ensemble"}
    _, unknown = await client.get("/dashboard/miners/nobody")
    assert unknown.status == 404
    _, bad = await client.get("/dashboard/miners/miner-a", params={"colour": "red"})
    assert bad.status == 400
    _, bad_id = await client.get("/dashboard/miners/Not%20A%20Miner")
    assert bad_id.status == 400
    _, other = await client.get("/dashboard/miners/miner-a", params={"date": D2.isoformat()})
    assert other.status == 200 and "No ground-truth verdict of this miner for 2026-03-02" in other.text


@pytest.mark.parametrize("labelled", [True, False])
def test_the_leaderboard_links_each_miner_and_tables_no_curve_points(labelled: bool) -> None:
    from gateway.dashboard import render_page

    rankings = {"window_days": 30, "through_date": D3, "miners": [
        {"rank": 1, "miner_id": "miner-a", "mean_final_score": 0.8, "mean_immediate_score": 0.4,
         "latest_weight": 0.5, "days": 3, "ground_truth_days": 1, "failed_integrity_days": 0}]}  # fmt: skip
    calibration = [{"miner_id": "miner-a", "labelled_date": D1, "metrics": STORED}] if labelled else []
    page = render_page("ethereum", rankings, None, calibration, NOW)
    assert "href='/dashboard/miners/miner-a?network=ethereum'" in page
    assert "reliability_" not in page and "pr_precision" not in page
