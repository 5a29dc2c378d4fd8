"""Replays need a fresh operator signature for their date, once each, and a few per date at most."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streams.control import ReplayCommand
from streams.signing import CONTROL, REANNOUNCE, Signer
from validator.control import ControlAuthority
from validator.errors import ControlRefused

DATE = dt.date(2026, 1, 2)
KEY = b"ethereum:2026-01-02"


def test_only_fresh_operator_signed_commands_within_the_limit_are_served() -> None:
    operator, stranger = Signer(Ed25519PrivateKey.generate(), "ops"), Signer(Ed25519PrivateKey.generate(), "ops")
    authority = ControlAuthority(lambda: {"ops": operator.public_key}, per_date=2, window_s=60)
    now = int(time.time() * 1000)
    value = ReplayCommand("ethereum", DATE).to_json()

    def signed(signer: Signer = operator, at: int = now, date: dt.date = DATE, purpose: str = CONTROL) -> object:
        return signer.headers(purpose, KEY, value, date=date, signed_at_ms=at)

    refused = [
        ([], "unsigned"),
        (signed(stranger), "does not verify"),
        (Signer(Ed25519PrivateKey.generate(), "eve").headers(CONTROL, KEY, value, date=DATE), "not an operator"),
        (signed(date=DATE + dt.timedelta(days=1)), "signed for 2026-01-03"),
        (signed(at=now - 600_000), "too old"),
        (signed(purpose=REANNOUNCE), "does not verify"),
    ]
    for headers, reason in refused:
        with pytest.raises(ControlRefused, match=reason):
            authority.authorise(CONTROL, KEY, value, headers, DATE, now)
    first = signed(at=now - 1)
    assert authority.authorise(CONTROL, KEY, value, first, DATE, now) == "ops"
    with pytest.raises(ControlRefused, match="already served"):
        authority.authorise(CONTROL, KEY, value, first, DATE, now)  # the same command copied and sent again
    assert authority.authorise(CONTROL, KEY, value, signed(at=now - 2), DATE, now) == "ops"
    with pytest.raises(ControlRefused, match="limit reached"):
        authority.authorise(CONTROL, KEY, value, signed(at=now - 3), DATE, now)
    assert authority.authorise(CONTROL, KEY, value, signed(at=now + 61_000), DATE, now + 61_000) == "ops"


def test_a_repeat_announcement_counts_once_when_an_operator_signed_it_recently() -> None:
    from streams.control import OperatorCheck

    operator = Signer(Ed25519PrivateKey.generate(), "ops")
    check = OperatorCheck(lambda: {"ops": operator.public_key})
    now = int(time.time() * 1000)
    event = b'{"Records": []}'
    fresh = operator.headers(REANNOUNCE, KEY, event, date=DATE, signed_at_ms=now)
    assert not check.signed(REANNOUNCE, KEY, event, [], now)
    assert not check.signed(REANNOUNCE, KEY, event, operator.headers(CONTROL, KEY, event, signed_at_ms=now), now)
    assert not check.signed(REANNOUNCE, KEY, event, operator.headers(REANNOUNCE, KEY, event, signed_at_ms=1), now)
    assert check.signed(REANNOUNCE, KEY, event, fresh, now)
    assert not check.signed(REANNOUNCE, KEY, event, fresh, now)  # the same signed event sent again
