"""Path and query parameters, checked once: every bad value becomes a 400 with a clear message."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.errors import BadRequestError
from streams.topics import validate_miner_id

Args = Mapping[str, Sequence[str]]
_NETWORK = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_MIN_DATE = dt.date(2000, 1, 1)
_MAX_DATE = dt.date(2149, 6, 6)  # ClickHouse Date ends here


@dataclass(frozen=True, slots=True)
class Page:
    limit: int
    offset: int


@dataclass(frozen=True, slots=True)
class Order:
    field: Literal["score", "rank", "id"]
    descending: bool


def _one(args: Args, name: str) -> str | None:
    # dict access, not .get(): Sanic's RequestParameters.get answers only the first value
    values = args[name] if name in args else None  # noqa: SIM401
    if not values:
        return None
    if len(values) > 1:
        msg = f"parameter {name!r} given {len(values)} times"
        raise BadRequestError(msg)
    return values[0]


def reject_unknown(args: Args, allowed: Sequence[str]) -> None:
    """A parameter the endpoint does not take is a 400 (a typo must not be silently ignored)."""
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) or "none"
        msg = f"unknown parameter {unknown[0]!r} (this endpoint takes: {accepted})"
        raise BadRequestError(msg)


def parse_date(text: str) -> dt.date:
    try:
        date = dt.date.fromisoformat(text)
    except ValueError:
        msg = f"not a date (YYYY-MM-DD): {text!r}"
        raise BadRequestError(msg) from None
    if len(text) != 10 or not _MIN_DATE <= date <= _MAX_DATE:
        msg = f"date must be YYYY-MM-DD between {_MIN_DATE} and {_MAX_DATE}: {text!r}"
        raise BadRequestError(msg)
    return date


def parse_date_or_latest(text: str) -> dt.date | None:
    """``latest`` -> None (the newest date with an ensemble), else the date."""
    return None if text == "latest" else parse_date(text)


def parse_miner_id(text: str) -> str:
    try:
        return validate_miner_id(text)
    except ValueError as exc:
        raise BadRequestError(str(exc)) from None


def parse_network(args: Args, default: str) -> str:
    network = _one(args, "network") or default
    if not _NETWORK.match(network):
        msg = f"network must be 1-32 chars of a-z, 0-9, '_' or '-': {network!r}"
        raise BadRequestError(msg)
    return network


def parse_int(args: Args, name: str, default: int, low: int, high: int) -> int:
    text = _one(args, name)
    if text is None:
        return default
    try:
        value = int(text, 10)
    except ValueError:
        msg = f"parameter {name!r} must be an integer: {text!r}"
        raise BadRequestError(msg) from None
    if not low <= value <= high:
        msg = f"parameter {name!r} must be between {low} and {high}: {value}"
        raise BadRequestError(msg)
    return value


def parse_page(args: Args, default_limit: int, max_limit: int) -> Page:
    return Page(
        parse_int(args, "limit", min(default_limit, max_limit), 1, max_limit),
        parse_int(args, "offset", 0, 0, 10_000_000),
    )


def parse_min_score(args: Args) -> float:
    text = _one(args, "min_score")
    if text is None:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        msg = f"parameter 'min_score' must be a number: {text!r}"
        raise BadRequestError(msg) from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        msg = f"parameter 'min_score' must be between 0 and 1: {text!r}"
        raise BadRequestError(msg)
    return value


def orders(id_field: str) -> list[str]:
    """The accepted ``order`` values: a field, optionally with ``:asc`` or ``:desc``."""
    return [f"{f}{d}" for f in ("score", "rank", id_field) for d in ("", ":asc", ":desc")]


def parse_order(args: Args, default: str, id_field: str) -> Order:
    """``order=score|rank|<id_field>`` with an optional ``:asc`` / ``:desc`` (score defaults to desc)."""
    text = _one(args, "order") or default
    accepted = orders(id_field)
    if text not in accepted:
        msg = f"parameter 'order' must be one of {', '.join(accepted)}: {text!r}"
        raise BadRequestError(msg)
    name, _, direction = text.partition(":")
    descending = direction == "desc" or (not direction and name == "score")
    if name == "score":
        return Order("score", descending)
    return Order("rank" if name == "rank" else "id", descending)


def parse_choice(args: Args, name: str, choices: Sequence[str], default: str) -> str:
    text = _one(args, name) or default
    if text not in choices:
        msg = f"parameter {name!r} must be one of {', '.join(choices)}: {text!r}"
        raise BadRequestError(msg)
    return text
