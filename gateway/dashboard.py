"""The HTML page at ``/``: miner leaderboard, score distribution, calibration per miner; no external assets."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any
from urllib.parse import quote

from gateway.miner_page import CURVE_PREFIXES

_STYLE = (
    "body{font:14px sans-serif;margin:2em;max-width:70em;color:#222}"
    "table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.25em .7em;text-align:right}"
    "td:first-child,th:first-child{text-align:left}h2{margin-top:1.8em;font-size:1.15em}.muted{color:#777}"
)


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "<span class='muted'>-</span>"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def _leaderboard(rankings: dict[str, Any], network: str) -> str:
    miners = rankings["miners"]
    if not miners:
        return "<p class='muted'>No validation results yet.</p>"
    rows = "".join(
        f"<tr><td>{m['rank']}. <a href='/dashboard/miners/{quote(m['miner_id'])}?network={quote(network)}'>"
        f"{escape(m['miner_id'])}</a></td><td>{_num(m['mean_final_score'])}</td>"
        f"<td>{_num(m['mean_immediate_score'])}</td><td>{_num(m['latest_weight'])}</td>"
        f"<td>{m['days']}</td><td>{m['ground_truth_days']}</td><td>{m['failed_integrity_days']}</td></tr>"
        for m in miners
    )
    return (
        f"<p class='muted'>{rankings['window_days']} days through {escape(str(rankings['through_date']))}</p>"
        "<table><tr><th>miner</th><th>mean final</th><th>mean immediate</th><th>weight</th><th>days</th>"
        f"<th>labelled days</th><th>failed integrity</th></tr>{rows}</table>"
    )


def _histogram(hist: dict[str, Any] | None) -> str:
    if hist is None:
        return "<p class='muted'>No ensemble yet.</p>"
    counts: list[int] = hist["counts"]
    top = max(counts) or 1
    width, height, n = 600, 160, len(counts)
    bar = width / n
    bars = "".join(
        f"<rect x='{i * bar:.1f}' y='{height - c / top * height:.1f}' width='{bar - 2:.1f}' "
        f"height='{c / top * height:.1f}' fill='#4a7bb7'><title>{i / n:.2f}-{(i + 1) / n:.2f}: {c}</title></rect>"
        for i, c in enumerate(counts)
    )
    axis = f"<text x='0' y='{height + 14}' font-size='11'>0</text>"
    axis += f"<text x='{width - 8}' y='{height + 14}' font-size='11'>1</text>"
    return (
        f"<p class='muted'>{escape(str(hist['processing_date']))}, version {hist['version']},"
        f" {sum(counts)} alerts</p><svg width='{width}' height='{height + 18}' role='img'"
        f" aria-label='ensemble score histogram'>{bars}{axis}</svg>"
    )


def _calibration(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p class='muted'>No ground truth yet (labels arrive days after a batch).</p>"
    names = sorted({k for r in rows for k in r["metrics"] if not k.startswith(CURVE_PREFIXES)})  # drawn per miner
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    body = "".join(
        f"<tr><td>{escape(r['miner_id'])}</td><td>{escape(str(r['labelled_date']))}</td>"
        + "".join(f"<td>{_num(r['metrics'].get(n))}</td>" for n in names)
        + "</tr>"
        for r in rows
    )
    return f"<table><tr><th>miner</th><th>labelled date</th>{head}</tr>{body}</table>"


def render_page(
    network: str,
    rankings: dict[str, Any],
    hist: dict[str, Any] | None,
    calibration: list[dict[str, Any]],
    now: dt.datetime,
) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>riskstream</title>"
        f"<style>{_STYLE}</style></head><body><h1>riskstream <small class='muted'>{escape(network)}</small></h1>"
        "<p>Ensemble risk scores of AML alerts. API: <a href='/docs'>docs</a>, "
        "<a href='/openapi.json'>openapi.json</a>, <a href='/dates/available'>dates</a>, "
        "<a href='/metrics'>metrics</a>.</p>"
        f"<h2>Miner leaderboard</h2>{_leaderboard(rankings, network)}"
        f"<h2>Ensemble score distribution (newest date)</h2>{_histogram(hist)}"
        f"<h2>Calibration and ground truth per miner</h2>{_calibration(calibration)}"
        f"<p class='muted'>rendered {now.isoformat(timespec='seconds')}</p></body></html>"
    )
