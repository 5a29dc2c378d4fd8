"""Miner registrations: registered miners are waited for, withdrawn ones are not, bad ones are refused."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from validator_fakes import DATE

from streams.codec import AvroCodec
from streams.errors import CodecError
from validator.registry import apply_registration, miners_to_wait_for
from validator.tables import round_key

WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def _registration(codec: AvroCodec, miner_id: str) -> bytes:
    return codec.encode(
        "riskstream.MinerRegistration",
        {"miner_id": miner_id, "profile": "honest-a", "networks": ["ethereum"], "model_versions": {},
         "registered_at": WHEN},
    )  # fmt: skip


def test_registered_miners_are_waited_for_until_they_withdraw(codec: AvroCodec) -> None:
    table: dict[str, Any] = {}
    assert apply_registration(table, codec, b"miner-z", _registration(codec, "miner-z")) == "miner-z"
    assert table["miner-z"]["registered_at"] == int(WHEN.timestamp() * 1000)
    assert miners_to_wait_for(["miner-a"], table) == ["miner-a", "miner-z"]
    apply_registration(table, codec, b"miner-z", None)  # a clean stop withdraws
    assert miners_to_wait_for(["miner-a"], table) == ["miner-a"]
    apply_registration(table, codec, b"miner-z", None)  # withdrawing twice is harmless


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"Not A Miner", None, "not a miner id"),
        (None, None, "not a miner id"),
        (b"miner-z", b"garbage", "too short|magic"),
        (b"miner-y", "other", "expected a riskstream.MinerRegistration of miner-y"),
    ],
)
def test_bad_registrations_raise_codec_error(codec: AvroCodec, key: bytes | None, value: Any, reason: str) -> None:
    value = _registration(codec, "miner-z") if value == "other" else value
    with pytest.raises(CodecError, match=reason):
        apply_registration({}, codec, key, value)


def test_a_round_waits_for_a_registered_miner(make_rounds: Any, codec: AvroCodec) -> None:
    rounds, _ = make_rounds(expected_miners=["honest-1"])
    apply_registration(rounds.tables.registry, codec, b"late-joiner", _registration(codec, "late-joiner"))
    assert rounds.expected_miners() == ["honest-1", "late-joiner"]
    assert not rounds.all_complete(round_key(DATE, "ethereum"))
