"""Miner registrations: who announced itself on ``miners.registry``, and who is still alive.

Every registry record is signed by the miner it names (``streams.signing``): a registration
carries the miner's public key and binds it (``validator.identity``), a heartbeat
(``MinerHeartbeat``) says it is alive, a null value withdraws it. Each must be newer than the
last one accepted from that miner (so a copied record cannot be replayed) and not from the
future by the validator's clock. A round waits for the configured and registered miners that are
*active*: not withdrawn, heartbeat not lapsed, and not ``missed_rounds`` rounds in a row without a
submission; a signed submission in an open round makes a miner active again. What the rounds say
of submissions comes from one worker's ``stats`` table (``TableSubmissions``) or, with several
workers, from the steps every worker reads (``validator.steps.LedgerSubmissions``).

    apply_registration(tables.registry, keys, codec, key, value, headers, now_ms=now)
    miners_to_wait_for(configured, tables, liveness, now_ms)
    miners_to_wait_for(configured, tables, liveness, now_ms, LedgerSubmissions(tables.batches, ledgers))
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from streams.codec import AvroCodec
from streams.errors import CodecError
from streams.records import MINER_HEARTBEAT, MINER_REGISTRATION
from streams.signing import HEARTBEAT, REGISTRATION, WITHDRAWAL, SignatureError, verify
from streams.topics import validate_miner_id
from validator.identity import IdentityError, KeyBook
from validator.tables import SEP, ValidatorTables, miner_key, parse_round_key

REGISTERED, HEARTBEAT_SEEN, WITHDRAWN = "registered", "heartbeat", "withdrew"


@dataclass(frozen=True, slots=True)
class Liveness:
    """When a registered miner stops being waited for."""

    missed_rounds: int = 2
    heartbeat_timeout_s: float = 120.0
    max_skew_s: float = 300.0  # a record signed further in the future than this is refused


def _millis(value: Any) -> int:
    return int(value.timestamp() * 1000) if isinstance(value, dt.datetime) else int(value)


def apply_registration(
    table: Any,
    keys: KeyBook,
    codec: AvroCodec,
    key: bytes | None,
    value: bytes | None,
    headers: Any,
    *,
    now_ms: int,
    liveness: Liveness | None = None,
) -> tuple[str, str]:
    """Apply one signed registration, heartbeat or withdrawal; returns (miner id, what happened).

    Raises ``CodecError`` for a record that is not one, ``IdentityError`` for one its miner did not
    provably send (unsigned, mis-signed, another key, replayed, unbound): it changes nothing.
    """
    limits = liveness or Liveness()
    try:
        miner_id = validate_miner_id((key or b"").decode())
    except (UnicodeDecodeError, ValueError) as exc:
        msg = f"registration key is not a miner id: {exc}"
        raise CodecError(msg) from exc
    entry = dict(table.get(miner_id) or {})
    if value is None:
        claim = keys.verify_as(WITHDRAWAL, miner_id, key, value, headers)
        _fresh(entry, claim.signed_at_ms, now_ms, limits, miner_id)
        if table.get(miner_id) is not None:
            table[miner_id] = {"withdrawn": True, "last_signed_at": claim.signed_at_ms, "last_seen_at": now_ms}
        return miner_id, WITHDRAWN
    decoded = codec.decode(value)
    if decoded.record.get("miner_id") != miner_id or decoded.name not in (MINER_REGISTRATION, MINER_HEARTBEAT):
        claimed = decoded.record.get("miner_id")
        msg = f"expected a registration or heartbeat of {miner_id}, got {decoded.name} of {claimed!r}"
        raise CodecError(msg)
    record = decoded.record
    if decoded.name == MINER_HEARTBEAT:
        if not entry or entry.get("withdrawn"):
            msg = f"heartbeat of {miner_id}, which is not registered"
            raise IdentityError(msg)
        claim = keys.verify_as(HEARTBEAT, miner_id, key, value, headers)
        _fresh(entry, claim.signed_at_ms, now_ms, limits, miner_id)
        table[miner_id] = {**entry, "last_signed_at": claim.signed_at_ms, "last_seen_at": now_ms}
        return miner_id, HEARTBEAT_SEEN
    public = str(record.get("public_key") or "")
    if not public:
        msg = f"registration of {miner_id} carries no public key"
        raise IdentityError(msg)
    try:
        claim = verify(public, REGISTRATION, miner_id, key, value, headers)  # it holds the key it announces
    except SignatureError as exc:
        raise IdentityError(str(exc)) from exc
    refused = keys.refusal(miner_id, public)
    if refused is not None:
        raise IdentityError(refused)
    _fresh(entry, claim.signed_at_ms, now_ms, limits, miner_id)
    keys.bind(miner_id, public, now_ms)
    table[miner_id] = {
        "profile": record["profile"],
        "networks": list(record["networks"]),
        "model_versions": dict(record["model_versions"]),
        "registered_at": _millis(record["registered_at"]),
        "public_key": public.lower(),
        "last_signed_at": claim.signed_at_ms,
        "last_seen_at": now_ms,  # the validator's clock, never the sender's
        "since": now_ms,
    }
    return miner_id, REGISTERED


def _fresh(entry: dict[str, Any], signed_at_ms: int, now_ms: int, limits: Liveness, miner_id: str) -> None:
    if signed_at_ms <= int(entry.get("last_signed_at", -1)):
        msg = f"a registry record of {miner_id} no newer than the last one accepted (replayed?)"
        raise IdentityError(msg)
    if signed_at_ms > now_ms + limits.max_skew_s * 1000:
        msg = f"a registry record of {miner_id} signed {(signed_at_ms - now_ms) / 1000:.0f}s in the future"
        raise IdentityError(msg)


def _registered(table: Any) -> dict[str, dict[str, Any]]:
    return {m: dict(v) for m, v in table.items() if v and not v.get("withdrawn")}


class Submissions(Protocol):
    """What the rounds say of a miner's submissions."""

    def submitted(self, rkey: str, miner: str) -> bool:
        """Its completion marker of round ``rkey`` is held."""
        ...

    def submitting(self, miner: str, now_ms: int, timeout_ms: float) -> bool:
        """A signed submission of ``miner`` is arriving in a round that is still open.

        Complete, or with a chunk seen (trusted time) within ``timeout_ms``: a miner that died half-way
        through its submission is not waited for once its chunks stop, like one whose heartbeats stop.
        """
        ...


@dataclass(frozen=True, slots=True)
class TableSubmissions:
    """``Submissions`` from one worker's tables (``stats``: each miner's facts of a round)."""

    tables: ValidatorTables

    def submitted(self, rkey: str, miner: str) -> bool:
        date, network = parse_round_key(rkey)
        return bool((self.tables.stats.get(miner_key(date, network, miner)) or {}).get("complete"))

    def submitting(self, miner: str, now_ms: int, timeout_ms: float) -> bool:
        for rkey, state in self.tables.batches.items():
            if state and state.get("opened") and not state.get("emitted"):
                date, network = parse_round_key(rkey)
                st = self.tables.stats.get(miner_key(date, network, miner)) or {}
                if st.get("complete"):
                    return True
                if st.get("chunks") and now_ms - int(st.get("last_chunk_at", now_ms)) <= timeout_ms:
                    return True
        return False


def missed_in_a_row(
    tables: ValidatorTables, miner: str, since_ms: int = 0, submissions: Submissions | None = None
) -> int:
    """Emitted rounds, newest first, that opened after ``since_ms`` and have no submission of ``miner``."""
    return _missed(_emitted(tables), miner, since_ms, submissions or TableSubmissions(tables))


def _emitted(tables: ValidatorTables) -> list[tuple[int, str]]:
    """(opened at, round key) of every emitted round, newest first."""
    return sorted(
        ((int(s.get("opened_at", 0)), k) for k, s in tables.batches.items() if s and s.get("emitted")), reverse=True
    )


def _missed(rounds: list[tuple[int, str]], miner: str, since_ms: int, seen: Submissions) -> int:
    missed = 0
    for opened_at, rkey in rounds:
        if opened_at < since_ms or seen.submitted(rkey, miner):
            break
        missed += 1
    return missed


def activity(
    configured: Iterable[str],
    tables: ValidatorTables,
    liveness: Liveness,
    now_ms: int,
    submissions: Submissions | None = None,
) -> dict[str, tuple[bool, str]]:
    """Every configured or registered miner -> (active, why not)."""
    seen = submissions or TableSubmissions(tables)
    registered = _registered(tables.registry)
    rounds = _emitted(tables)  # once, not per miner: the rounds are never expired
    found: dict[str, tuple[bool, str]] = {}
    for miner in sorted(set(configured) | set(registered)):
        entry = registered.get(miner)
        reason = ""
        if entry is not None and now_ms - int(entry.get("last_seen_at", 0)) > liveness.heartbeat_timeout_s * 1000:
            reason = f"no heartbeat for more than {liveness.heartbeat_timeout_s:.0f}s"
        missed = _missed(rounds, miner, int(entry.get("since", 0)) if entry else 0, seen)
        if not reason and liveness.missed_rounds > 0 and missed >= liveness.missed_rounds:
            reason = f"missed the last {missed} rounds"
        if reason and seen.submitting(miner, now_ms, liveness.heartbeat_timeout_s * 1000):
            reason = ""
        found[miner] = (not reason, reason)
    return found


def miners_to_wait_for(
    configured: list[str],
    tables: ValidatorTables,
    liveness: Liveness | None = None,
    now_ms: int | None = None,
    submissions: Submissions | None = None,
) -> list[str]:
    """The miners a round waits for: configured or registered, and active."""
    if now_ms is None:
        return sorted(set(configured) | set(_registered(tables.registry)))
    live = activity(configured, tables, liveness or Liveness(), now_ms, submissions)
    return sorted(m for m, (active, _) in live.items() if active)


__all__ = [
    "SEP",
    "Liveness",
    "Submissions",
    "TableSubmissions",
    "activity",
    "apply_registration",
    "miners_to_wait_for",
    "missed_in_a_row",
]
