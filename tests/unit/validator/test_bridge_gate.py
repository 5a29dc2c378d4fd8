"""The bridge's gate: only records the miner of the topic signed, once, enter the validator."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streams.kafka import Message
from streams.signing import SCORE, Signer
from streams.topics import TopicNames
from validator.bridge import Gate, InboxRecord, forward, forwarded_by_bridge, seen_at, wait_for_keys
from validator.identity import KeyBook

TOPICS = TopicNames("t.")
DATE = dt.date(2026, 1, 2)
KEY = b"2026-01-02:0001"


class Sent:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | str | None, bytes | None, list[tuple[str, bytes]]]] = []

        self.partitions: list[int | None] = []

    def send(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        partition: int | None = None,
    ) -> None:
        self.sent.append((topic, key, value, list(headers or [])))
        self.partitions.append(partition)


def _message(miner: str, offset: int, value: bytes, signer: Signer | None, topic_miner: str | None = None) -> Message:
    headers = () if signer is None else tuple(signer.headers(SCORE, KEY, value, date=DATE, batch_id="b1"))
    return Message(TOPICS.miner_scores(topic_miner or miner), 0, offset, KEY, value, 0, headers)


def test_with_partitions_a_chunk_goes_to_the_partition_of_its_bucket() -> None:
    """bucket b -> partition b mod P, as each worker's share of the ensemble is cut; a marker by its key."""
    miner = Signer(Ed25519PrivateKey.generate(), "honest")
    gate = Gate(KeyBook({}, {"honest": miner.public_key}), TOPICS, Signer(Ed25519PrivateKey.generate(), "validator"))
    keys = [b"2026-01-02:0006", b"2026-01-02:0013", b"2026-01-02:0000", b"2026-01-02:complete"]
    messages = [
        Message(TOPICS.miner_scores("honest"), 0, i, key, b"v%d" % i, 0, tuple(miner.headers(SCORE, key, b"v%d" % i)))
        for i, key in enumerate(keys)
    ]
    routed, hashed = Sent(), Sent()
    assert forward(routed, TOPICS.validator_inbox, messages, gate, partitions=4) == 0  # type: ignore[arg-type]
    assert routed.partitions == [2, 1, 0, None]
    assert forward(hashed, TOPICS.validator_inbox, messages, gate) == 0  # type: ignore[arg-type]
    assert hashed.partitions == [None] * 4  # the single worker's inbox: by key hash, as before


def test_impostors_garbage_and_copies_are_dead_lettered_with_the_reason() -> None:
    honest, impostor = Signer(Ed25519PrivateKey.generate(), "honest"), Signer(Ed25519PrivateKey.generate(), "honest")
    other = Signer(Ed25519PrivateKey.generate(), "other")
    keys = KeyBook({}, {"honest": honest.public_key, "other": other.public_key})
    validator = Signer(Ed25519PrivateKey.generate(), "validator")
    gate = Gate(keys, TOPICS, validator)
    good = _message("honest", 0, b"chunk", honest)
    messages = [
        good,
        _message("honest", 1, b"junk", impostor),  # the right name, another key
        _message("honest", 2, b"\x00garbage", None),  # unsigned bytes keyed with a date
        _message("other", 3, b"chunk", other, topic_miner="honest"),  # another miner's signature
        Message(good.topic, 0, 4, good.key, good.value, 0, good.headers),  # the good record copied again
        good,  # a redelivery (same position) is not a copy
    ]
    producer = Sent()
    assert forward(producer, TOPICS.validator_inbox, messages, gate) == 4  # type: ignore[arg-type]
    inbox = [s for s in producer.sent if s[0] == TOPICS.validator_inbox]
    dead = {
        dict(s[3])["source_offset"]: dict(s[3])["error"].decode() for s in producer.sent if s[0] == TOPICS.dlq("scores")
    }
    assert [s[2] for s in inbox] == [b"chunk", b"chunk"]
    assert "does not verify" in dead[b"1"] and "unsigned" in dead[b"2"]
    assert "signed by 'other', expected 'honest'" in dead[b"3"] and "a copy of the record at" in dead[b"4"]
    record = InboxRecord(KEY, b"chunk", good.topic, 0, 0)
    assert forwarded_by_bridge(validator.public_key, record, inbox[0][3]) is None
    moved = InboxRecord(KEY, b"chunk", TOPICS.miner_scores("other"), 0, 0)
    assert "forwarded from" in (forwarded_by_bridge(validator.public_key, moved, inbox[0][3]) or "")
    assert "not forwarded by the bridge" in (forwarded_by_bridge(validator.public_key, record, record.headers()) or "")


async def test_records_of_an_unbound_miner_wait_for_its_registration_then_give_up() -> None:
    late = Signer(Ed25519PrivateKey.generate(), "late")
    table: dict[str, dict[str, object]] = {}
    gate = Gate(KeyBook(table), TOPICS, unbound_grace_s=5.0)
    message = _message("late", 0, b"chunk", late)

    async def register() -> None:
        await asyncio.sleep(0.3)
        assert gate.keys.bind("late", late.public_key, 0) is None

    await asyncio.gather(wait_for_keys(gate, [message], poll_s=0.05), register())
    assert gate.check(message) is None
    stranger = _message("stranger", 0, b"chunk", Signer(Ed25519PrivateKey.generate(), "stranger"))
    impatient = Gate(KeyBook({}), TOPICS, unbound_grace_s=0.2)
    await asyncio.wait_for(wait_for_keys(impatient, [stranger], poll_s=0.05), 5)
    assert "no key is bound" in (impatient.check(stranger) or "")


def test_a_record_is_seen_when_the_bridge_fetched_it_not_when_it_got_round_to_it() -> None:
    fetched = Message("scores.m", 0, 5, b"k", b"v", timestamp_ms=1_000, fetched_ms=2_000)
    assert seen_at(fetched, now_ms=9_000) == 2_000  # taken up after a busy spell: the fetch is the evidence
    assert seen_at(dataclasses.replace(fetched, fetched_ms=0), now_ms=9_000) == 9_000  # unknown: now
    assert seen_at(dataclasses.replace(fetched, fetched_ms=10_000), now_ms=9_000) == 9_000  # never after now
    appended = dataclasses.replace(fetched, log_append_time=True)
    assert seen_at(appended, now_ms=9_000) == 1_000  # the broker's append time, where trusted
    assert seen_at(appended, now_ms=9_000, log_append_time=False) == 2_000  # the sender's clock otherwise
