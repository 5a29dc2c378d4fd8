"""Miner registrations: signed, bound to one key, fresh; registered miners are waited for while active."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from validator_fakes import DATE

from streams.codec import AvroCodec
from streams.errors import CodecError
from streams.signing import HEARTBEAT, REGISTRATION, WITHDRAWAL, Signer
from validator.identity import IdentityError, KeyBook
from validator.roster import Liveness, activity, apply_registration, miners_to_wait_for
from validator.tables import ValidatorTables, miner_key, round_key

WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def _now() -> int:
    return int(time.time() * 1000)


def _registration(codec: AvroCodec, miner_id: str, public_key: str = "") -> bytes:
    return codec.encode(
        "riskstream.MinerRegistration",
        {"miner_id": miner_id, "profile": "honest-a", "networks": ["ethereum"], "model_versions": {},
         "registered_at": WHEN, "public_key": public_key},
    )  # fmt: skip


class Miner:
    def __init__(self, codec: AvroCodec, miner_id: str) -> None:
        self.codec, self.id = codec, miner_id
        self.signer = Signer(Ed25519PrivateKey.generate(), miner_id)
        self.clock = _now() - 10_000

    def _at(self) -> int:
        self.clock += 1
        return self.clock

    def register(self) -> tuple[bytes, bytes, Any]:
        value = _registration(self.codec, self.id, self.signer.public_key)
        key = self.id.encode()
        return key, value, self.signer.headers(REGISTRATION, key, value, signed_at_ms=self._at())

    def heartbeat(self) -> tuple[bytes, bytes, Any]:
        value = self.codec.encode("riskstream.MinerHeartbeat", {"miner_id": self.id, "sent_at": WHEN})
        key = self.id.encode()
        return key, value, self.signer.headers(HEARTBEAT, key, value, signed_at_ms=self._at())

    def withdraw(self) -> tuple[bytes, None, Any]:
        key = self.id.encode()
        return key, None, self.signer.headers(WITHDRAWAL, key, None, signed_at_ms=self._at())


def _apply(table: Any, book: KeyBook, codec: AvroCodec, record: tuple[bytes, bytes | None, Any]) -> tuple[str, str]:
    return apply_registration(table, book, codec, *record, now_ms=_now())


def test_registered_miners_are_waited_for_until_they_withdraw(codec: AvroCodec) -> None:
    tables = ValidatorTables.in_memory()
    book = KeyBook(tables.identities)
    z = Miner(codec, "miner-z")
    assert _apply(tables.registry, book, codec, z.register()) == ("miner-z", "registered")
    assert tables.registry["miner-z"]["registered_at"] == int(WHEN.timestamp() * 1000)
    assert tables.identities["miner-z"]["public_key"] == z.signer.public_key
    assert miners_to_wait_for(["miner-a"], tables, Liveness(), _now()) == ["miner-a", "miner-z"]
    assert _apply(tables.registry, book, codec, z.heartbeat()) == ("miner-z", "heartbeat")
    assert _apply(tables.registry, book, codec, z.withdraw()) == ("miner-z", "withdrew")  # a clean stop
    assert miners_to_wait_for(["miner-a"], tables, Liveness(), _now()) == ["miner-a"]
    assert _apply(tables.registry, book, codec, z.register())[1] == "registered"  # same key: welcome back


def test_forged_phantom_and_replayed_registry_records_change_nothing(codec: AvroCodec) -> None:
    tables = ValidatorTables.in_memory()
    book = KeyBook(tables.identities)
    honest, thief = Miner(codec, "honest"), Miner(codec, "honest")
    first = honest.register()
    _apply(tables.registry, book, codec, first)
    before = dict(tables.registry)
    forged = [
        (thief.register(), "bound to another key"),  # re-registration with another key
        (thief.withdraw(), "does not verify"),  # a withdrawal signed by someone else
        ((b"honest", None, []), "unsigned"),  # an unsigned withdrawal
        (thief.heartbeat(), "does not verify"),
        (first, "no newer than the last"),  # the honest registration, copied and sent again
        ((b"honest", first[1], []), "unsigned"),
    ]
    for record, reason in forged:
        with pytest.raises(IdentityError, match=reason):
            _apply(tables.registry, book, codec, record)
    assert tables.registry == before
    withdrawal = honest.withdraw()
    _apply(tables.registry, book, codec, withdrawal)
    _apply(tables.registry, book, codec, honest.register())
    with pytest.raises(IdentityError, match="no newer"):
        _apply(tables.registry, book, codec, withdrawal)  # an old withdrawal replayed after a restart
    assert not tables.registry["honest"].get("withdrawn")


def test_the_allow_list_binds_and_nothing_else_does(codec: AvroCodec) -> None:
    known, phantom = Miner(codec, "known"), Miner(codec, "phantom")
    tables = ValidatorTables.in_memory()
    book = KeyBook(tables.identities, {"known": known.signer.public_key})
    assert _apply(tables.registry, book, codec, known.register())[1] == "registered"
    with pytest.raises(IdentityError, match="not in the allow-list"):
        _apply(tables.registry, book, codec, phantom.register())
    assert "phantom" not in tables.registry and not tables.identities


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"Not A Miner", None, "not a miner id"),
        (None, None, "not a miner id"),
        (b"miner-z", b"garbage", "too short|magic"),
        (b"miner-y", "other", "expected a registration or heartbeat of miner-y"),
    ],
)
def test_bad_registrations_raise_codec_error(codec: AvroCodec, key: bytes | None, value: Any, reason: str) -> None:
    value = _registration(codec, "miner-z") if value == "other" else value
    with pytest.raises(CodecError, match=reason):
        apply_registration({}, KeyBook({}), codec, key, value, [], now_ms=_now())


def test_a_miner_that_stops_beating_or_misses_rounds_is_not_waited_for(codec: AvroCodec) -> None:
    tables = ValidatorTables.in_memory()
    book = KeyBook(tables.identities)
    live = Liveness(missed_rounds=2, heartbeat_timeout_s=60)
    now = _now()
    for name in ("beating", "silent"):
        apply_registration(tables.registry, book, codec, *Miner(codec, name).register(), now_ms=now - 5_000)
    assert miners_to_wait_for([], tables, live, now) == ["beating", "silent"]
    tables.registry["silent"] = {**tables.registry["silent"], "last_seen_at": now - 61_000}
    assert activity([], tables, live, now)["silent"] == (False, "no heartbeat for more than 60s")
    # two emitted rounds after it registered without a submission of "beating": it misses them
    for day in (1, 2):
        date = DATE + dt.timedelta(days=day)
        tables.batches[round_key(date, "ethereum")] = {"opened": True, "emitted": True, "opened_at": now - 4000 + day}
    assert activity([], tables, live, now)["beating"] == (False, "missed the last 2 rounds")
    assert miners_to_wait_for(["configured"], tables, live, now) == []  # configured ones miss rounds too
    # its next signed submission (in an open round) makes it active again
    open_day = DATE + dt.timedelta(days=3)
    tables.batches[round_key(open_day, "ethereum")] = {"opened": True, "emitted": False, "opened_at": now}
    tables.stats[miner_key(open_day, "ethereum", "beating")] = {"chunks": ["alert|00001|00000"], "last_chunk_at": now}
    assert activity([], tables, live, now)["beating"] == (True, "")
    assert "silent" not in miners_to_wait_for([], tables, live, now)


def test_a_miner_that_dies_mid_submission_is_not_waited_for_once_its_chunks_stop(codec: AvroCodec) -> None:
    tables = ValidatorTables.in_memory()
    live = Liveness(missed_rounds=2, heartbeat_timeout_s=60)
    now = _now()
    apply_registration(tables.registry, KeyBook(tables.identities), codec, *Miner(codec, "dying").register(),
                          now_ms=now - 100_000)  # fmt: skip
    tables.batches[round_key(DATE, "ethereum")] = {"opened": True, "emitted": False, "opened_at": now - 90_000}
    stats = miner_key(DATE, "ethereum", "dying")
    # heartbeats stopped 100 s ago, but its chunks are still arriving: it is sending, wait for it
    tables.stats[stats] = {"chunks": ["alert|00001|00000"], "last_chunk_at": now - 30_000}
    assert activity([], tables, live, now)["dying"] == (True, "")
    # its last chunk is older than the heartbeat timeout and no marker came: it is gone
    tables.stats[stats] = {"chunks": ["alert|00001|00000"], "last_chunk_at": now - 61_000}
    assert activity([], tables, live, now)["dying"] == (False, "no heartbeat for more than 60s")
    assert miners_to_wait_for([], tables, live, now) == []
    # a complete submission in the open round keeps it counted however old (it is done, it blocks nothing)
    tables.stats[stats] = {"chunks": ["alert|00001|00000"], "last_chunk_at": now - 61_000, "complete": {"x": 1}}
    assert activity([], tables, live, now)["dying"] == (True, "")


def test_a_round_waits_for_a_registered_miner(make_rounds: Any, codec: AvroCodec) -> None:
    rounds, _ = make_rounds(expected_miners=["honest-1"])
    joiner = Miner(codec, "late-joiner")
    apply_registration(rounds.tables.registry, KeyBook(rounds.tables.identities), codec, *joiner.register(),
                          now_ms=_now())  # fmt: skip
    assert rounds.expected_miners() == ["honest-1", "late-joiner"]
    assert not rounds.all_complete(round_key(DATE, "ethereum"))
