"""Signatures: exact canonical bytes, what verifies and what does not, and key files."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streams.signing import (
    INBOX,
    SCORE,
    SIGNATURE_HEADER,
    VALIDATOR,
    WITHDRAWAL,
    SignatureError,
    SignedClaim,
    Signer,
    SigningProducer,
    canonical_bytes,
    generate_key,
    header_map,
    key_path,
    load_private_key,
    read_public_key,
    verify,
    verify_forwarded,
    verify_from_validator,
    verify_many,
    verify_output,
)
from streams.topics import TopicNames

DATE = dt.date(2026, 1, 10)
VALUE = b"\x00\x00\x00\x00\x01payload"


def test_canonical_bytes_are_exactly_the_documented_lines() -> None:
    got = canonical_bytes(SCORE, "miner-a", b"2026-01-10:0003", VALUE, date=DATE, batch_id="b1", signed_at_ms=42)
    digest = hashlib.sha256(VALUE).hexdigest()
    key_hex = b"2026-01-10:0003".hex()
    assert got == f"riskstream-signature-v1\nscore\nminer-a\n2026-01-10\nb1\n{key_hex}\n{digest}\n42\n".encode()
    assert canonical_bytes(WITHDRAWAL, "m", None, None, signed_at_ms=1) == (
        b"riskstream-signature-v1\nwithdrawal\nm\n\n\n\nnull\n1\n"
    )


def test_a_line_break_in_a_field_is_refused() -> None:
    with pytest.raises(SignatureError, match="line break"):
        canonical_bytes(SCORE, "m", b"k", VALUE, batch_id="b\n1", signed_at_ms=1)


def test_signed_records_verify_and_any_change_does_not() -> None:
    signer = Signer(Ed25519PrivateKey.generate(), "miner-a")
    key = b"2026-01-10:0003"
    headers = signer.headers(SCORE, key, VALUE, date=DATE, batch_id="b1", signed_at_ms=1000)
    claim = verify(signer.public_key, SCORE, "miner-a", key, VALUE, headers)
    assert (claim.signer, claim.date, claim.batch_id, claim.signed_at_ms) == ("miner-a", "2026-01-10", "b1", 1000)
    other = Signer(Ed25519PrivateKey.generate(), "miner-a")
    tampered = dict(header_map(headers))
    tampered["riskstream-date"] = b"2026-01-11"
    cases = [
        (signer.public_key, SCORE, "miner-a", key, VALUE + b"x", headers, "does not verify"),
        (signer.public_key, SCORE, "miner-a", b"2026-01-10:0004", VALUE, headers, "does not verify"),
        (signer.public_key, WITHDRAWAL, "miner-a", key, VALUE, headers, "does not verify"),
        (other.public_key, SCORE, "miner-a", key, VALUE, headers, "does not verify"),
        (signer.public_key, SCORE, "miner-b", key, VALUE, headers, "signed by 'miner-a', expected 'miner-b'"),
        (signer.public_key, SCORE, "miner-a", key, VALUE, list(tampered.items()), "does not verify"),
        (signer.public_key, SCORE, "miner-a", key, VALUE, [], "unsigned"),
        (signer.public_key, SCORE, "miner-a", key, VALUE, [(SIGNATURE_HEADER, b"zz")], "malformed"),
        ("not-hex", SCORE, "miner-a", key, VALUE, headers, "not an Ed25519 public key"),
    ]
    for public, purpose, who, k, v, h, reason in cases:
        with pytest.raises(SignatureError, match=reason):
            verify(public, purpose, who, k, v, h)
        # the batched check refuses each for the same reason, on its own, next to one that verifies
        found = verify_many(public, who, [(purpose, k, v, h), (SCORE, key, VALUE, headers)])
        assert isinstance(found[0], SignatureError) and re.search(reason, str(found[0]))
        with pytest.raises(SignatureError) as raised:
            verify(public, purpose, who, k, v, h)
        assert str(found[0]) == str(raised.value)
        if public == signer.public_key and who == "miner-a":
            assert found[1] == claim


_L = 2**252 + 27742317777372353535851937790883648493  # the order of the Ed25519 base point


def test_a_signature_with_s_plus_the_group_order_is_refused_by_both_checks() -> None:
    signer = Signer(Ed25519PrivateKey.generate(), VALIDATOR)
    headers = header_map(signer.headers("ensemble.alerts", b"k", VALUE, signed_at_ms=5))
    signature = bytes.fromhex(headers[SIGNATURE_HEADER].decode())
    s = int.from_bytes(signature[32:], "little") + _L  # the same point equation, a non-canonical S
    assert s < 2**256
    headers[SIGNATURE_HEADER] = (signature[:32] + s.to_bytes(32, "little")).hex().encode()
    with pytest.raises(SignatureError, match="does not verify"):
        verify(signer.public_key, "ensemble.alerts", VALIDATOR, b"k", VALUE, headers)
    (found,) = verify_many(signer.public_key, VALIDATOR, [("ensemble.alerts", b"k", VALUE, headers)])
    assert isinstance(found, SignatureError) and "does not verify" in str(found)


def test_one_forged_record_in_a_batch_fails_alone() -> None:
    signer = Signer(Ed25519PrivateKey.generate(), VALIDATOR)
    forger = Signer(Ed25519PrivateKey.generate(), VALIDATOR)
    keys = [f"2026-01-10:a{i}".encode() for i in range(50)]
    records = [("ensemble.alerts", k, k[::-1], signer.headers("ensemble.alerts", k, k[::-1])) for k in keys]
    purpose, key, value, _ = records[17]
    records[17] = (purpose, key, value, forger.headers(purpose, key, value))
    found = verify_many(signer.public_key, VALIDATOR, records)
    assert [i for i, f in enumerate(found) if isinstance(f, SignatureError)] == [17]
    assert str(found[17]) == "the signature of 'validator' does not verify (ensemble.alerts)"
    for (p, k, v, h), claim in zip(records, found, strict=True):
        if not isinstance(claim, SignatureError):
            assert claim == verify(signer.public_key, p, VALIDATOR, k, v, h)


def test_records_from_the_validator_are_checked_by_their_topic() -> None:
    topics = TopicNames("t.")
    signer = Signer(Ed25519PrivateKey.generate(), VALIDATOR)
    output = signer.headers("ensemble.alerts", b"k", VALUE)
    forwarded = signer.headers(INBOX, b"k", VALUE, batch_id="t.scores.m1:0:7")
    records = [
        (topics.ensemble_alerts, b"k", VALUE, output),
        (topics.validator_inbox, b"k", VALUE, forwarded),
        (topics.validator_inbox, b"k", VALUE, signer.headers(INBOX, b"k", VALUE)),  # no source position
        (topics.ensemble_batches, b"k", VALUE, output),  # signed for another topic
        (topics.validator_inbox, b"k", VALUE, output),  # an output record is not a forwarded one
        (topics.miner_scores("m1"), b"k", VALUE, forwarded),  # a miner topic is never trusted
    ]
    found = verify_from_validator(signer.public_key, topics, records)
    assert verify_output(signer.public_key, topics, *records[0]) == found[0]
    assert verify_forwarded(signer.public_key, *records[1][1:]) == "t.scores.m1:0:7"
    assert isinstance(found[1], SignedClaim) and found[1].batch_id == "t.scores.m1:0:7"
    reasons = [str(f) for f in found[2:]]
    assert reasons == [
        "a forwarded record without its source position",
        "the signature of 'validator' does not verify (ensemble.batches)",
        "the signature of 'validator' does not verify (inbox)",
        f"{topics.miner_scores('m1')} is not a validator output topic",
    ]


def test_signatures_are_the_ones_openssl_gives() -> None:
    key = Ed25519PrivateKey.generate()
    signer = Signer(key, VALIDATOR)
    for message in (b"", b"riskstream-signature-v1\n", bytes(range(256)) * 40):
        assert signer.sign(message) == key.sign(message)  # Ed25519 is deterministic: libsodium or OpenSSL


def test_headers_many_are_the_headers_of_each_record() -> None:
    signer = Signer(Ed25519PrivateKey.generate(), VALIDATOR)
    records: list[tuple[str, bytes | str | None, bytes | None]] = [
        ("ensemble.alerts", "2026-01-10:a1", VALUE),
        ("validator.results", b"k", b""),
        ("ensemble.batches", None, None),
    ]
    many = signer.headers_many(records, signed_at_ms=1234)
    assert many == [signer.headers(p, k, v, signed_at_ms=1234) for p, k, v in records]
    with pytest.raises(SignatureError, match="line break"):
        signer.headers_many([("ensemble\nalerts", b"k", VALUE)])


class _Recording:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | str | None, bytes | None, list[tuple[str, bytes]]]] = []
        self.flushes = 0

    def send(self, topic: str, key: bytes | str | None, value: bytes | None, headers: Any = None) -> None:
        self.sent.append((topic, key, value, list(headers or [])))

    def flush(self, timeout: float = 60.0) -> None:
        self.flushes += 1


def test_the_signing_producer_signs_output_records_in_batches_and_in_order() -> None:
    topics = TopicNames("t.")
    signer = Signer(Ed25519PrivateKey.generate(), VALIDATOR)
    inner = _Recording()
    producer = SigningProducer(inner, signer, topics, batch=3, threads=1)
    producer.send(topics.ensemble_alerts, "2026-01-10:a1", b"v1", headers=[("x", b"1")])
    producer.send(topics.dlq("scores"), b"k", b"dead")  # not an output topic: passes straight through, unsigned
    assert inner.sent == [(topics.dlq("scores"), b"k", b"dead", [])]
    producer.send(topics.ensemble_alerts, "2026-01-10:a2", b"v2")
    producer.send(topics.validator_results, "2026-01-10:m", b"r")  # the third: the batch is signed and handed on
    producer.send(topics.ensemble_batches, "ethereum:2026-01-10", b"b")
    assert [s[1] for s in inner.sent] == [b"k", "2026-01-10:a1", "2026-01-10:a2", "2026-01-10:m"]
    producer.flush()
    assert inner.flushes == 1 and inner.sent[-1][1] == "ethereum:2026-01-10"
    assert inner.sent[1][3][0] == ("x", b"1")  # the sender's own headers come first
    for topic, key, value, headers in inner.sent[1:]:
        key_bytes = key.encode() if isinstance(key, str) else key
        assert verify_output(signer.public_key, topics, topic, key_bytes, value, headers).signer == VALIDATOR


def test_a_large_batch_signed_on_threads_is_in_order_and_verifies() -> None:
    topics = TopicNames("t.")
    signer = Signer(Ed25519PrivateKey.generate(), VALIDATOR)
    inner = _Recording()
    producer = SigningProducer(inner, signer, topics, batch=10_000, threads=3)
    keys = [f"2026-01-10:a{i:05d}" for i in range(3500)]  # parts of 1167 records on three threads
    for key in keys:
        producer.send(topics.ensemble_alerts, key, key.encode())
    producer.flush()
    assert [s[1] for s in inner.sent] == keys
    for topic, sent_key, value, headers in inner.sent:
        assert isinstance(sent_key, str)
        verify_output(signer.public_key, topics, topic, sent_key.encode(), value, headers)


def test_key_files_are_private_and_never_silently_replaced(tmp_path: Path) -> None:
    path = key_path(tmp_path / "home", "miner", "miner-a")
    assert path == tmp_path / "home" / "keys" / "miner-miner-a.key"
    public = generate_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_public_key(path) == public == Signer.from_file(path, "miner-a").public_key
    assert "PRIVATE" not in repr(Signer.from_file(path, "miner-a"))
    with pytest.raises(SignatureError, match="already exists"):
        generate_key(path)
    path.chmod(0o644)
    with pytest.raises(SignatureError, match="readable by others"):
        load_private_key(path)
    with pytest.raises(SignatureError, match="no key at"):
        load_private_key(tmp_path / "missing.key")


def test_clients_authenticate_as_the_settings_say() -> None:
    from streams.kafka import aiokafka_security, client_security, use_credentials

    try:
        use_credentials("SASL_PLAINTEXT", "SCRAM-SHA-512", "miner-a", "pw")
        assert client_security() == {
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "miner-a", "sasl.password": "pw",
        }  # fmt: skip
        assert aiokafka_security()["sasl_plain_username"] == "miner-a"
    finally:
        use_credentials("PLAINTEXT")
    assert client_security() == {} and aiokafka_security() == {}
