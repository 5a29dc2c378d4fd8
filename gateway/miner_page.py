"""The page of one miner, ``/dashboard/miners/<miner_id>``: weight and final score over time, the reasons
of each verdict, and its reliability diagram and precision-recall curve from ground truth.

Every number comes from the warehouse rows the JSON endpoints serve (``/miners/{id}/performance``,
``/validation/{date}/{id}``); the curves are the points the validator stored with its tier-3 metrics
(``validator/ground_truth.py``: ``reliability_<bin>_<what>``, ``pr_precision_at_recall_<level>``), so
the pictures show exactly what scored the miner. Charts are SVG drawn server-side with leather (a
small pure-Python charting library, no dependencies), inline, with no script or style loaded from anywhere.

    page = miner_page(performance, verdicts, ensemble_metrics, labelled_date=None)
    html = render_miner_page(page, now)
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from html import escape
from typing import Any

import leather
from sanic import Request, Sanic
from sanic.response import HTTPResponse, html

from gateway import queries
from gateway.errors import NotFoundError
from gateway.params import parse_date, parse_int, parse_miner_id, parse_network, reject_unknown
from gateway.settings import GatewaySettings

PATH = "/dashboard/miners/{miner_id}"
ENSEMBLE_ID = "ensemble"  # the validator's row for the ensemble's own tier-3 figures
RELIABILITY_PREFIX, PR_PREFIX = "reliability_", "pr_precision_at_recall_"
CURVE_PREFIXES = (RELIABILITY_PREFIX, PR_PREFIX)
FIGURES = ("auc_roc", "auc_pr", "precision_at_k", "brier", "calibration_error", "labelled", "positives")
BINS = 10


@dataclass(frozen=True, slots=True)
class DayFigures:
    processing_date: dt.date
    weight: float
    immediate_score: float
    final_score: float | None  # None until the date's labels are judged
    passed_integrity: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    processing_date: dt.date
    stage: str
    version: int
    weight: float
    passed_integrity: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    low: float
    count: int
    mean_score: float
    positive_rate: float


@dataclass(frozen=True, slots=True)
class Curves:
    """One score vector's ground-truth figures on one date, with its reliability bins and PR points."""

    figures: dict[str, float]
    reliability: tuple[ReliabilityBin, ...]  # non-empty bins only
    precision_recall: tuple[tuple[float, float], ...]  # (recall level, interpolated precision)


@dataclass(frozen=True, slots=True)
class MinerPage:
    network: str
    miner_id: str
    history: tuple[DayFigures, ...]  # oldest first
    verdicts: tuple[Verdict, ...]  # newest first
    labelled_date: dt.date | None  # the date the curves are of (None: no ground truth yet)
    miner: Curves | None
    ensemble: Curves | None


def curves_of(metrics: dict[str, float] | None) -> Curves | None:
    """Split stored tier-3 metrics into figures, reliability bins and PR points; None without any."""
    if not metrics:
        return None
    reliability = []
    for b in range(BINS):
        count = int(metrics.get(f"{RELIABILITY_PREFIX}{b}_count", 0))
        score = metrics.get(f"{RELIABILITY_PREFIX}{b}_mean_score")
        rate = metrics.get(f"{RELIABILITY_PREFIX}{b}_positive_rate")
        if count and score is not None and rate is not None:
            reliability.append(ReliabilityBin(b / BINS, count, float(score), float(rate)))
    points = sorted((float(k.removeprefix(PR_PREFIX)), float(v)) for k, v in metrics.items() if k.startswith(PR_PREFIX))
    figures = {k: float(v) for k, v in metrics.items() if not k.startswith(CURVE_PREFIXES)}
    return Curves(figures, tuple(reliability), tuple(points))


def miner_page(
    performance: dict[str, Any],
    verdicts: list[dict[str, Any]],
    ensemble_metrics: dict[str, float] | None,
    labelled_date: dt.date | None = None,
) -> MinerPage:
    """The page's data from the ``miner_performance`` answer, the miner's verdict rows and the
    ensemble's tier-3 metrics of ``labelled_date`` (default: the miner's newest labelled date)."""
    rows = sorted(performance["history"], key=lambda r: r["processing_date"])
    history = tuple(
        DayFigures(
            r["processing_date"],
            float(r["weight"]),
            float(r["immediate_score"]),
            None if r["final_score"] is None else float(r["final_score"]),
            bool(r["passed_integrity"]),
        )
        for r in rows
    )
    labelled = {r["processing_date"]: r["ground_truth_metrics"] for r in rows if r["has_ground_truth"]}
    if labelled_date is None and labelled:
        labelled_date = max(labelled)
    return MinerPage(
        network=performance["network"],
        miner_id=performance["miner_id"],
        history=history,
        verdicts=tuple(
            Verdict(
                v["processing_date"],
                str(v["stage"]),
                int(v["version"]),
                float(v["weight"]),
                bool(v["passed_integrity"]),
                tuple(v["reasons"]),
            )
            for v in verdicts
        ),
        labelled_date=labelled_date,
        miner=curves_of(labelled.get(labelled_date)) if labelled_date else None,
        ensemble=curves_of(ensemble_metrics) if labelled_date else None,
    )


# leather's theme is module settings (its documented way); the gateway is its only user in this process
leather.theme.background_color = "#ffffff"
for _name in ("title", "legend", "axis_title", "tick"):
    setattr(leather.theme, f"{_name}_font_family", "sans-serif")
MINER_COLOUR, ENSEMBLE_COLOUR, GUIDE_COLOUR = "#4a7bb7", "#d9822b", "#999999"
WIDTH, HEIGHT = 600, 360


def _unit(title: str) -> Any:
    chart = leather.Chart(title)
    chart.add_x_scale(0, 1)
    chart.add_y_scale(0, 1)
    return chart


def _svg(chart: Any, label: str) -> str:
    svg = str(chart.to_svg(width=WIDTH, height=HEIGHT))
    return svg.replace("<svg ", f"<svg role='img' aria-label='{escape(label, quote=True)}' ", 1)


def history_chart(history: tuple[DayFigures, ...]) -> str:
    chart = leather.Chart("Weight and final score per date")
    # leather's time scale takes naive datetimes (its ticker subtracts datetime.min), not dates
    days = [dt.datetime.combine(d.processing_date, dt.time()) for d in history]  # noqa: DTZ001 a day, no zone
    low, high = min(days), max(days)
    if low == high:  # one date: give the time axis a width
        low, high = low - dt.timedelta(days=1), high + dt.timedelta(days=1)
    chart.set_x_scale(leather.Temporal(low, high))
    chart.add_y_scale(0, 1)
    step = max(1, -(-len(days) // 7))  # at most 7 labelled ticks, on the dates themselves
    ticks = days[::step] if len(days) > 1 else [low, days[0], high]
    chart.add_x_axis(ticks=ticks, tick_formatter=lambda value, index, count: value.strftime("%m-%d"))
    weights = [(t, d.weight) for t, d in zip(days, history, strict=True)]
    immediate = [(t, d.immediate_score) for t, d in zip(days, history, strict=True)]
    if len(days) == 1:  # a line through one point draws nothing
        chart.add_dots(weights, name="weight", fill_color=MINER_COLOUR, radius=4)
        chart.add_dots(immediate, name="immediate score", fill_color=GUIDE_COLOUR, radius=4)
    else:
        chart.add_line(weights, name="weight", stroke_color=MINER_COLOUR)
        chart.add_line(immediate, name="immediate score", stroke_color=GUIDE_COLOUR, stroke_dasharray="4 3")
    finals = [(t, d.final_score) for t, d in zip(days, history, strict=True) if d.final_score is not None]
    if finals:  # labelled dates only: points, not a line through the unlabelled ones
        chart.add_dots(finals, name="final score", fill_color=ENSEMBLE_COLOUR, radius=4)
    return _svg(chart, "weight and final score per date")


def reliability_chart(miner: Curves, ensemble: Curves | None, miner_id: str) -> str:
    chart = _unit("Reliability: share illicit per score bin")
    chart.add_x_axis(name="mean score in the bin")
    chart.add_y_axis(name="share labelled illicit")
    chart.add_line([(0.0, 0.0), (1.0, 1.0)], name="calibrated", stroke_color=GUIDE_COLOUR, stroke_dasharray="4 3")
    for who, curves, colour in ((miner_id, miner, MINER_COLOUR), ("ensemble", ensemble, ENSEMBLE_COLOUR)):
        if curves is not None and curves.reliability:
            points = [(b.mean_score, b.positive_rate) for b in curves.reliability]  # one per non-empty bin
            chart.add_dots(points, name=who, fill_color=colour, radius=4)
    return _svg(chart, f"reliability diagram of {miner_id}")


def precision_recall_chart(miner: Curves, ensemble: Curves | None, miner_id: str) -> str:
    chart = _unit("Precision at recall (interpolated)")
    chart.add_x_axis(name="recall")
    chart.add_y_axis(name="best precision at recall >= r")
    for who, curves, colour in ((miner_id, miner, MINER_COLOUR), ("ensemble", ensemble, ENSEMBLE_COLOUR)):
        if curves is not None and curves.precision_recall:
            name = f"{who} (AUC-PR {curves.figures.get('auc_pr', float('nan')):.3f})"
            chart.add_line(list(curves.precision_recall), name=name, stroke_color=colour)
    return _svg(chart, f"precision-recall curve of {miner_id}")


_CSS = (
    "body{font:14px sans-serif;margin:2em;max-width:72em;color:#222}"
    "table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.25em .7em;text-align:right;"
    "vertical-align:top}td:first-child,th:first-child{text-align:left}td.reasons{text-align:left}"
    "h2{margin-top:1.8em;font-size:1.15em}.muted{color:#777}.charts{display:flex;flex-wrap:wrap;gap:1em}"
)


def _num(value: float | None, digits: int = 3) -> str:
    return "<span class='muted'>-</span>" if value is None else f"{value:.{digits}f}"


def _history_table(history: tuple[DayFigures, ...]) -> str:
    rows = "".join(
        f"<tr><td>{d.processing_date.isoformat()}</td><td>{_num(d.weight)}</td><td>{_num(d.immediate_score)}</td>"
        f"<td>{_num(d.final_score)}</td><td>{'yes' if d.passed_integrity else 'no'}</td></tr>"
        for d in reversed(history)
    )
    return (
        "<table><tr><th>date</th><th>weight</th><th>immediate</th><th>final</th><th>integrity passed</th></tr>"
        f"{rows}</table>"
    )


def _verdict_table(verdicts: tuple[Verdict, ...]) -> str:
    if not verdicts:
        return "<p class='muted'>No verdicts yet.</p>"
    rows = "".join(
        f"<tr><td>{v.processing_date.isoformat()}</td><td>{escape(v.stage)}</td><td>{v.version}</td>"
        f"<td>{_num(v.weight)}</td><td>{'yes' if v.passed_integrity else 'no'}</td><td class='reasons'>"
        + ("<br>".join(escape(r) for r in v.reasons) or "<span class='muted'>none</span>")
        + "</td></tr>"
        for v in verdicts
    )
    return (
        "<table><tr><th>date</th><th>stage</th><th>version</th><th>weight</th><th>integrity passed</th>"
        f"<th>reasons</th></tr>{rows}</table>"
    )


def _figures_table(miner: Curves, ensemble: Curves | None, miner_id: str) -> str:
    names = [n for n in FIGURES if n in miner.figures] + sorted(set(miner.figures) - set(FIGURES))
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = [(miner_id, miner)] + ([("ensemble", ensemble)] if ensemble is not None else [])
    body = "".join(
        f"<tr><td>{escape(who)}</td>" + "".join(f"<td>{_num(c.figures.get(n))}</td>" for n in names) + "</tr>"
        for who, c in rows
    )
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def _ground_truth(page: MinerPage) -> str:
    if page.labelled_date is None:
        return "<p class='muted'>No ground truth yet: labels are published days after a batch (tau).</p>"
    day = page.labelled_date.isoformat()
    if page.miner is None:
        return f"<p class='muted'>No ground-truth verdict of this miner for {day}.</p>"
    if not page.miner.reliability and not page.miner.precision_recall:
        return f"<p class='muted'>Judged on {day} before the validator stored curve points.</p>" + _figures_table(
            page.miner, page.ensemble, page.miner_id
        )
    charts = reliability_chart(page.miner, page.ensemble, page.miner_id)
    if page.miner.precision_recall:
        charts += precision_recall_chart(page.miner, page.ensemble, page.miner_id)
    else:
        charts += "<p class='muted'>No illicit alert among the labelled ones: no precision-recall curve.</p>"
    return (
        f"<p>Labelled date {day} (the newest; another: <code>?date=YYYY-MM-DD</code>).</p>"
        f"{_figures_table(page.miner, page.ensemble, page.miner_id)}<div class='charts'>{charts}</div>"
    )


def render_miner_page(page: MinerPage, now: dt.datetime) -> str:
    who, network = escape(page.miner_id), escape(page.network)
    api = f"/miners/{who}/performance?network={network}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{who} - riskstream</title>"
        f"<style>{_CSS}</style></head><body><h1>{who} <small class='muted'>{network}</small></h1>"
        f"<p><a href='/?network={network}'>leaderboard</a> · data: <a href='{api}'>performance</a>, "
        "<a href='/docs'>API docs</a></p>"
        f"<h2>Weight and final score over time</h2><div class='charts'>{history_chart(page.history)}</div>"
        f"{_history_table(page.history)}"
        f"<h2>Ground truth</h2>{_ground_truth(page)}"
        f"<h2>Verdicts and their reasons</h2>{_verdict_table(page.verdicts)}"
        f"<p class='muted'>rendered {now.isoformat(timespec='seconds')}</p></body></html>"
    )


def add_miner_page_route(app: Sanic[Any, Any], settings: GatewaySettings) -> None:
    @app.get("/dashboard/miners/<miner_id:str>")
    async def miner_dashboard(request: Request, miner_id: str) -> HTTPResponse:
        reject_unknown(request.args, ("network", "days", "date"))
        miner, network = parse_miner_id(miner_id), parse_network(request.args, settings.network)
        days = parse_int(request.args, "days", 90, 1, 3660)
        wanted = request.args.get("date")
        chosen = parse_date(wanted) if wanted else None
        reader: queries.WarehouseReader | None = getattr(request.app.ctx, "reader", None)
        if reader is None:
            msg = "the warehouse is not open yet"
            raise queries.WarehouseUnavailableError(msg)
        performance = await queries.miner_performance(reader, network, miner, days)  # 404 for an unknown miner
        since = min(r["processing_date"] for r in performance["history"])
        verdicts = await queries.miner_verdicts(reader, network, miner, since)
        labelled = chosen or max(
            (r["processing_date"] for r in performance["history"] if r["has_ground_truth"]), default=None
        )
        ensemble: dict[str, float] | None = None
        if labelled is not None:
            try:
                judged = await queries.validation_of_miner(reader, network, labelled, ENSEMBLE_ID)
                ensemble = (judged["ground_truth"] or {}).get("metrics")
            except NotFoundError:
                ensemble = None
        page = miner_page(performance, verdicts, ensemble, labelled)
        now = dt.datetime.now(dt.UTC)
        return html(await asyncio.to_thread(render_miner_page, page, now))  # SVG drawing is CPU work
