"""Parameter parsing: every bad value is a BadRequestError with a message naming the parameter."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.errors import BadRequestError
from gateway.params import (
    Order,
    Page,
    orders,
    parse_date,
    parse_date_or_latest,
    parse_int,
    parse_min_score,
    parse_miner_id,
    parse_network,
    parse_order,
    parse_page,
)


def test_dates() -> None:
    assert parse_date("2026-02-27") == dt.date(2026, 2, 27)
    assert parse_date_or_latest("latest") is None
    assert parse_date_or_latest("2026-01-01") == dt.date(2026, 1, 1)


@pytest.mark.parametrize("text", ["2026-13-01", "2026-02-30", "yesterday", "", "20260227", "1999-12-31", "2150-01-01"])
def test_bad_dates(text: str) -> None:
    with pytest.raises(BadRequestError, match="date"):
        parse_date(text)


def test_page_defaults_and_bounds() -> None:
    assert parse_page({}, 100, 1000) == Page(100, 0)
    assert parse_page({"limit": ["7"], "offset": ["3"]}, 100, 1000) == Page(7, 3)
    assert parse_page({}, 5000, 1000) == Page(1000, 0)
    for args in ({"limit": ["0"]}, {"limit": ["1001"]}, {"offset": ["-1"]}, {"limit": ["ten"]}, {"limit": ["1.5"]}):
        with pytest.raises(BadRequestError):
            parse_page(args, 100, 1000)


def test_a_parameter_given_twice_is_refused() -> None:
    with pytest.raises(BadRequestError, match="given 2 times"):
        parse_int({"days": ["1", "2"]}, "days", 30, 1, 100)


def test_min_score() -> None:
    assert parse_min_score({}) == 0.0
    assert parse_min_score({"min_score": ["0.25"]}) == 0.25
    for text in ("nan", "inf", "-0.1", "1.01", "x"):
        with pytest.raises(BadRequestError, match="min_score"):
            parse_min_score({"min_score": [text]})


def test_order() -> None:
    assert parse_order({}, "rank", "alert_id") == Order("rank", False)
    assert parse_order({"order": ["score"]}, "rank", "alert_id") == Order("score", True)
    assert parse_order({"order": ["score:asc"]}, "rank", "alert_id") == Order("score", False)
    assert parse_order({"order": ["alert_id:desc"]}, "rank", "alert_id") == Order("id", True)
    assert parse_order({"order": ["cluster_id"]}, "rank", "cluster_id") == Order("id", False)
    assert "cluster_id:asc" in orders("cluster_id")
    for text in ("cluster_id", "score:up", "ensemble_score", "rank;drop"):
        with pytest.raises(BadRequestError, match="order"):
            parse_order({"order": [text]}, "rank", "alert_id")


def test_network_and_miner_ids() -> None:
    assert parse_network({}, "ethereum") == "ethereum"
    assert parse_network({"network": ["bitcoin"]}, "ethereum") == "bitcoin"
    assert parse_network({"network": [""]}, "ethereum") == "ethereum"  # empty means the default
    assert parse_miner_id("miner-a") == "miner-a"
    for bad in ("Bad Net", "x" * 40, "eth'"):
        with pytest.raises(BadRequestError, match="network"):
            parse_network({"network": [bad]}, "ethereum")
    for bad in ("Miner", "-a", "a/b", "a" * 64):
        with pytest.raises(BadRequestError, match="miner id"):
            parse_miner_id(bad)
