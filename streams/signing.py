"""Ed25519 signatures on Kafka records: the canonical bytes, the headers, and the key files.

Every record a participant sends is signed by it; the signature and what it covers travel in
Kafka headers, so the Avro payloads (and every stock Avro subscriber) stay as they are.

Canonical bytes (version 1), UTF-8, one field per line, each line ended by ``\\n``::

    riskstream-signature-v1
    <purpose>          what the record is: score, registration, heartbeat, withdrawal, control, reannounce,
                       or the validator's output topic (ensemble.alerts, ensemble.clusters,
                       ensemble.batches, validator.results)
    <signer>           the miner id, "validator", or the operator's name
    <processing date>  YYYY-MM-DD, or empty when the record has none
    <batch id>         the manifest's batch_id, or empty
    <record key>       lowercase hex of the Kafka key bytes, empty for a null key
    <payload digest>   lowercase hex SHA-256 of the Kafka value bytes exactly as sent (the
                       Confluent-framed Avro), or the word null for a null value (a withdrawal)
    <signed at>        integer milliseconds since the Unix epoch, decimal

No field may contain a line break. The signature is Ed25519 (RFC 8032) over those bytes.

Headers (values are ASCII bytes): ``riskstream-signer`` the signer, ``riskstream-signed-at``
the milliseconds, ``riskstream-date`` and ``riskstream-batch`` when not empty, and
``riskstream-signature`` the 64-byte signature as 128 lowercase hex characters. Public keys are
the 32 raw bytes as 64 lowercase hex characters.

    signer = Signer.from_file(path, "miner-a")              # a 0600 PEM file (riskstream miner keygen)
    producer.send(topic, key, value, headers=signer.headers(SCORE, key, value, date=d, batch_id=b))
    verify(public_key_hex, SCORE, "miner-a", key, value, headers)   # raises SignatureError
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError

from streams.errors import RiskstreamError
from streams.topics import TopicNames

VERSION_LINE = "riskstream-signature-v1"
SCORE = "score"
REGISTRATION = "registration"
HEARTBEAT = "heartbeat"
WITHDRAWAL = "withdrawal"
CONTROL = "control"
REANNOUNCE = "reannounce"  # an operator's repeat of a batch event (riskstream replay --from sot)
TIE_DRAW = "tie-draw"  # the validator's signature over a date orders miners it saw at one instant (never sent)
VALIDATOR = "validator"  # the validator's signer name
OPERATOR = "operator"  # the default operator's signer name

SIGNER_HEADER = "riskstream-signer"
SIGNED_AT_HEADER = "riskstream-signed-at"
DATE_HEADER = "riskstream-date"
BATCH_HEADER = "riskstream-batch"
SIGNATURE_HEADER = "riskstream-signature"
SIGNATURE_HEADERS = (SIGNER_HEADER, SIGNED_AT_HEADER, DATE_HEADER, BATCH_HEADER, SIGNATURE_HEADER)

Headers = list[tuple[str, bytes]]
SIGNATURE_BYTES = 64
SIGNING_PART = 1000  # records per thread at least: smaller batches are signed in the calling thread


class SignatureError(RiskstreamError):
    """A record whose signature is missing, malformed, or does not verify; or an unusable key."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def canonical_bytes(
    purpose: str,
    signer: str,
    key: bytes | str | None,
    value: bytes | None,
    *,
    date: dt.date | str | None = None,
    batch_id: str | None = None,
    signed_at_ms: int,
) -> bytes:
    """The exact bytes a signature covers (see the module docstring)."""
    key_bytes = key.encode() if isinstance(key, str) else key
    fields = [
        VERSION_LINE,
        purpose,
        signer,
        date.isoformat() if isinstance(date, dt.date) else (date or ""),
        batch_id or "",
        key_bytes.hex() if key_bytes else "",
        hashlib.sha256(value).hexdigest() if value is not None else "null",
        str(int(signed_at_ms)),
    ]
    return _lines(fields)


def _lines(fields: Sequence[str]) -> bytes:
    for field in fields:
        if "\n" in field or "\r" in field:
            msg = f"a signed field cannot contain a line break: {field[:40]!r}"
            raise SignatureError(msg)
    return ("\n".join(fields) + "\n").encode()


def public_key_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key from its 64 hex characters; ``SignatureError`` if it is not one."""
    try:
        raw = bytes.fromhex(text.strip())
        if len(raw) != 32:
            msg = f"an Ed25519 public key is 32 bytes, got {len(raw)}"
            raise ValueError(msg)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        msg = f"not an Ed25519 public key (64 hex characters): {exc}"
        raise SignatureError(msg) from exc


def header_map(headers: Any) -> dict[str, bytes]:
    """Kafka headers (a list of pairs, a dict, or None) as a dict; the last value of a name wins."""
    if not headers:
        return {}
    pairs: Iterable[Any] = headers.items() if isinstance(headers, Mapping) else headers
    found: dict[str, bytes] = {}
    for name, value in pairs:
        found[_text(name)] = bytes(value) if value is not None else b""
    return found


def without_signature(headers: Any) -> Headers:
    """The headers that are not part of a signature (to forward a record with its own)."""
    return [(k, v) for k, v in header_map(headers).items() if k not in SIGNATURE_HEADERS]


@dataclass(frozen=True, slots=True)
class SignedClaim:
    """What a verified signature vouches for, beyond the key and value it was checked against."""

    signer: str
    signed_at_ms: int
    date: str
    batch_id: str
    signature: bytes


class Signer:
    """Signs records as one participant.

    signer = Signer(Ed25519PrivateKey.generate(), "miner-a")
    headers = signer.headers(SCORE, b"2026-01-10:0003", value, date=d, batch_id="b1")
    """

    __slots__ = ("_secret", "name", "public_key")

    def __init__(self, key: Ed25519PrivateKey, name: str) -> None:
        # Signed with libsodium (PyNaCl): Ed25519 is deterministic, so the signatures are the bytes
        # OpenSSL gives, ~1.7x faster, and the call releases the GIL (batches sign on several cores)
        seed = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        self._secret = crypto_sign_seed_keypair(seed)[1]
        self.name = name
        self.public_key = public_key_hex(key)

    @classmethod
    def from_file(cls, path: Path, name: str) -> Signer:
        return cls(load_private_key(path), name)

    def __repr__(self) -> str:  # never the private key
        return f"Signer({self.name!r}, public_key={self.public_key[:16]}...)"

    def headers(
        self,
        purpose: str,
        key: bytes | str | None,
        value: bytes | None,
        *,
        date: dt.date | str | None = None,
        batch_id: str | None = None,
        signed_at_ms: int | None = None,
    ) -> Headers:
        """The signature headers of one record."""
        at = int(time.time() * 1000) if signed_at_ms is None else int(signed_at_ms)
        day = date.isoformat() if isinstance(date, dt.date) else (date or "")
        message = canonical_bytes(purpose, self.name, key, value, date=day, batch_id=batch_id, signed_at_ms=at)
        found: Headers = [(SIGNER_HEADER, self.name.encode()), (SIGNED_AT_HEADER, str(at).encode())]
        if day:
            found.append((DATE_HEADER, day.encode()))
        if batch_id:
            found.append((BATCH_HEADER, batch_id.encode()))
        found.append((SIGNATURE_HEADER, self.sign(message).hex().encode()))
        return found

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (already canonical bytes)."""
        return crypto_sign(message, self._secret)[:SIGNATURE_BYTES]

    def headers_many(
        self,
        records: Sequence[tuple[str, bytes | str | None, bytes | None]],
        *,
        signed_at_ms: int | None = None,
    ) -> list[Headers]:
        """The signature headers of many (purpose, key, value) records without a date or batch, signed at
        one time: the same bytes ``headers`` gives each, without rebuilding the constant lines per record."""
        at = int(time.time() * 1000) if signed_at_ms is None else int(signed_at_ms)
        heads: dict[str, bytes] = {}
        tail = f"{at}\n".encode()
        messages = []
        for purpose, key, value in records:
            head = heads.get(purpose)
            if head is None:  # the lines before the key (no date, no batch), checked once per purpose
                head = heads[purpose] = _lines([VERSION_LINE, purpose, self.name, "", ""])
            key_bytes = key.encode() if isinstance(key, str) else key
            digest = hashlib.sha256(value).hexdigest().encode() if value is not None else b"null"
            messages.append(
                b"".join((head, key_bytes.hex().encode() if key_bytes else b"", b"\n", digest, b"\n", tail))
            )
        signatures = [crypto_sign(m, self._secret)[:SIGNATURE_BYTES] for m in messages]
        common: Headers = [(SIGNER_HEADER, self.name.encode()), (SIGNED_AT_HEADER, str(at).encode())]
        return [[*common, (SIGNATURE_HEADER, signature.hex().encode())] for signature in signatures]


def claim_of(headers: Any) -> SignedClaim:
    """The signature headers of a record, parsed (not verified); ``SignatureError`` if absent or malformed."""
    found = header_map(headers)
    if SIGNATURE_HEADER not in found:
        msg = "unsigned: no riskstream-signature header"
        raise SignatureError(msg)
    try:
        signature = bytes.fromhex(found[SIGNATURE_HEADER].decode())
        at = int(found[SIGNED_AT_HEADER].decode())
        signer = found[SIGNER_HEADER].decode()
        date = found.get(DATE_HEADER, b"").decode()
        batch = found.get(BATCH_HEADER, b"").decode()
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        msg = f"malformed signature headers: {type(exc).__name__}: {exc}"
        raise SignatureError(msg) from exc
    if len(signature) != 64:
        msg = f"malformed signature: {len(signature)} bytes, not 64"
        raise SignatureError(msg)
    return SignedClaim(signer, at, date, batch, signature)


def verify(
    public_key: Ed25519PublicKey | str,
    purpose: str,
    signer: str,
    key: bytes | str | None,
    value: bytes | None,
    headers: Any,
) -> SignedClaim:
    """Check that ``signer`` signed this key and value for ``purpose``; returns what it vouched for.

    Raises ``SignatureError`` with the reason: unsigned, malformed, signed by someone else, or not
    verifying under ``public_key``.
    """
    claim = claim_of(headers)
    if claim.signer != signer:
        msg = f"signed by {claim.signer!r}, expected {signer!r}"
        raise SignatureError(msg)
    public = parse_public_key(public_key) if isinstance(public_key, str) else public_key
    message = canonical_bytes(
        purpose, signer, key, value, date=claim.date, batch_id=claim.batch_id, signed_at_ms=claim.signed_at_ms
    )
    try:
        public.verify(claim.signature, message)
    except InvalidSignature as exc:
        msg = f"the signature of {signer!r} does not verify ({purpose})"
        raise SignatureError(msg) from exc
    return claim


Record = tuple[str, bytes | str | None, bytes | None, Any]  # purpose, key, value, headers


def verify_many(
    public_key: Ed25519PublicKey | str, signer: str, records: Sequence[Record]
) -> list[SignedClaim | SignatureError]:
    """``verify`` of many (purpose, key, value, headers) records under one key, each on its own.

    Each record's claim, or the ``SignatureError`` (same reason) ``verify`` raises for it: a bad
    record fails alone. The signatures are checked by libsodium, with ~2x less CPU than OpenSSL's
    check, releasing the GIL (callers may check parts of a batch on threads). Both check
    [S]B = R + [k]A against the encoded R with S < L; libsodium also refuses small-order R and
    keys, so it never accepts what ``verify`` refuses.
    """
    try:
        public = parse_public_key(public_key) if isinstance(public_key, str) else public_key
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        key_error = None
    except SignatureError as exc:
        raw, key_error = b"", exc
    found: list[SignedClaim | SignatureError] = []
    for purpose, key, value, headers in records:
        try:  # in the order ``verify`` checks them, for the same first reason
            claim = claim_of(headers)
            if claim.signer != signer:
                msg = f"signed by {claim.signer!r}, expected {signer!r}"
                raise SignatureError(msg)
            if key_error is None:
                message = canonical_bytes(
                    purpose, signer, key, value, date=claim.date, batch_id=claim.batch_id,
                    signed_at_ms=claim.signed_at_ms,
                )  # fmt: skip
        except SignatureError as exc:
            found.append(exc)
            continue
        if key_error is not None:
            found.append(key_error)
            continue
        try:
            crypto_sign_open(claim.signature + message, raw)
        except BadSignatureError:
            found.append(SignatureError(f"the signature of {signer!r} does not verify ({purpose})"))
        else:
            found.append(claim)
    return found


# ---- key files -------------------------------------------------------------------------------


def key_path(home: Path, role: str, name: str | None = None) -> Path:
    """Where a participant's private key lives by default: ``<home>/keys/<role>[-<name>].key``."""
    return home / "keys" / (f"{role}-{name}.key" if name else f"{role}.key")


def public_path(private_path: Path) -> Path:
    """The public key beside a private key file (hex, world-readable)."""
    return private_path.with_suffix(".pub")


def generate_key(path: Path, *, overwrite: bool = False) -> str:
    """Write a new private key to ``path`` (0600, in a 0700 directory) and its ``.pub``; returns the public hex.

    Refuses to replace an existing key unless ``overwrite``: a miner's id is bound to its key.
    """
    if path.exists() and not overwrite:
        msg = f"{path} already exists; a new key would not match the one already bound to this id"
        raise SignatureError(msg)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    public = public_key_hex(key)
    public_path(path).write_text(public + "\n")
    return public


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """A private key from its PEM file; refuses a file that others than its owner can read."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            msg = f"{path} is readable by others (mode {stat.S_IMODE(mode):o}); chmod 600 it"
            raise SignatureError(msg)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        msg = f"no key at {path}: create one with `riskstream <service> keygen`"
        raise SignatureError(msg) from exc
    except (ValueError, TypeError) as exc:
        msg = f"{path} is not a PEM private key: {exc}"
        raise SignatureError(msg) from exc
    if not isinstance(key, Ed25519PrivateKey):
        msg = f"{path} holds a {type(key).__name__}, not an Ed25519 key"
        raise SignatureError(msg)
    return key


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The key at ``path``, generated first if there is none (the local default)."""
    if not path.exists():
        generate_key(path)
    return load_private_key(path)


def read_public_key(path: Path) -> str:
    """The hex public key of a ``.pub`` file (or of the ``.key`` beside it); ``SignatureError`` if none."""
    pub = path if path.suffix == ".pub" else public_path(path)
    try:
        text = pub.read_text().strip()
    except FileNotFoundError as exc:
        msg = f"no public key at {pub}"
        raise SignatureError(msg) from exc
    parse_public_key(text)
    return text


# ---- the validator's outputs -----------------------------------------------------------------

INBOX = "inbox"  # a miner record the validator's bridge accepted; its batch-id line is the source position


def output_purposes(topics: TopicNames) -> dict[str, str]:
    """Topic -> purpose of every record the validator publishes (the topic's name without namespace)."""
    return {
        topics.ensemble_alerts: "ensemble.alerts",
        topics.ensemble_clusters: "ensemble.clusters",
        topics.ensemble_batches: "ensemble.batches",
        topics.validator_results: "validator.results",
    }


class SigningProducer:
    """A producer that signs, as the validator, every record sent to one of its output topics.

    Those records are signed in batches (one signing time per batch, the constant lines built once,
    large batches in parts on ``threads`` threads): they reach the inner producer every ``batch``
    records and at ``flush``, in the order sent; records for other topics pass straight through.

    producer = SigningProducer(BatchProducer(servers), Signer(key, VALIDATOR), stack.topics)
    producer.send(topics.ensemble_batches, key, value)     # headers carry the validator's signature
    producer.flush()                                        # signed, handed on, delivered
    """

    def __init__(
        self, inner: Any, signer: Signer, topics: TopicNames, batch: int = 5000, threads: int | None = None
    ) -> None:
        self.inner = inner
        self.signer = signer
        self.batch = batch
        self._purposes = output_purposes(topics)
        # a batch is signed in parts on these threads (the signing call releases the GIL)
        self.threads = threads if threads is not None else min(4, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="signing") if self.threads > 1 else None
        self._unsigned: list[tuple[str, str, bytes | str | None, bytes | None, Sequence[tuple[str, bytes]]]] = []

    def send(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        purpose = self._purposes.get(topic)
        if purpose is None:
            self.inner.send(topic, key, value, headers=headers)
            return
        self._unsigned.append((topic, purpose, key, value, headers or ()))
        if len(self._unsigned) >= self.batch:
            self._sign_and_pass()

    def _sign_and_pass(self) -> None:
        unsigned, self._unsigned = self._unsigned, []
        records = [(purpose, key, value) for _, purpose, key, value, _ in unsigned]
        at = int(time.time() * 1000)
        size = max(SIGNING_PART, -(-len(records) // self.threads))
        if self._pool is None or len(records) <= size:
            signed = self.signer.headers_many(records, signed_at_ms=at)
        else:
            parts = [records[i : i + size] for i in range(0, len(records), size)]
            found = self._pool.map(lambda part: self.signer.headers_many(part, signed_at_ms=at), parts)
            signed = [headers for part in found for headers in part]
        for (topic, _, key, value, headers), signature in zip(unsigned, signed, strict=True):
            self.inner.send(topic, key, value, headers=[*headers, *signature])

    def flush(self, timeout: float = 60.0) -> None:
        self._sign_and_pass()
        self.inner.flush(timeout)


def verify_output(
    public_key: Ed25519PublicKey | str,
    topics: TopicNames,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Any,
) -> SignedClaim:
    """A record on a validator output topic that the validator signed; ``SignatureError`` if not."""
    purpose = output_purposes(topics).get(topic)
    if purpose is None:
        msg = f"{topic} is not a validator output topic"
        raise SignatureError(msg)
    return verify(public_key, purpose, VALIDATOR, key, value, headers)


def verify_forwarded(public_key: Ed25519PublicKey | str, key: bytes | None, value: bytes | None, headers: Any) -> str:
    """The source position (``topic:partition:offset``) of a miner record the validator's bridge accepted.

    Raises ``SignatureError`` if the validator did not forward it.
    """
    claim = verify(public_key, INBOX, VALIDATOR, key, value, headers)
    if not claim.batch_id:
        msg = "a forwarded record without its source position"
        raise SignatureError(msg)
    return claim.batch_id


def verify_from_validator(
    public_key: Ed25519PublicKey | str,
    topics: TopicNames,
    records: Sequence[tuple[str, bytes | None, bytes | None, Any]],
) -> list[SignedClaim | SignatureError]:
    """``verify_output`` or ``verify_forwarded`` of many (topic, key, value, headers) records, each on its own.

    A record on ``topics.validator_inbox`` must be a forwarded miner record (its claim's batch id
    is the source position); any other must be on a validator output topic. Each record's claim,
    or its ``SignatureError`` with the reason those functions give (see ``verify_many``).
    """
    purposes, inbox = output_purposes(topics), topics.validator_inbox
    found: list[SignedClaim | SignatureError | None] = []
    signed: list[Record] = []
    for topic, key, value, headers in records:
        purpose = INBOX if topic == inbox else purposes.get(topic)
        if purpose is None:
            found.append(SignatureError(f"{topic} is not a validator output topic"))
        else:
            found.append(None)
            signed.append((purpose, key, value, headers))
    checked = iter(verify_many(public_key, VALIDATOR, signed))
    out: list[SignedClaim | SignatureError] = []
    for (topic, *_), early in zip(records, found, strict=True):
        result = early if early is not None else next(checked)
        if isinstance(result, SignedClaim) and topic == inbox and not result.batch_id:
            result = SignatureError("a forwarded record without its source position")
        out.append(result)
    return out


def trusted_validator_key(configured: str, home: Path) -> str | None:
    """The validator's public key: configured (production), else the one the local validator wrote."""
    if configured:
        parse_public_key(configured)
        return configured.strip().lower()
    try:
        return read_public_key(key_path(home, VALIDATOR))
    except SignatureError:
        return None  # the validator has not started yet
