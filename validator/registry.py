"""Miner registrations: which miners announced themselves on ``miners.registry``.

A round waits for the configured miners plus the registered ones (until its deadline); a
miner withdraws with a null value when it stops cleanly.

    apply_registration(tables.registry, codec, b"miner-a", value)
"""

from __future__ import annotations

from typing import Any

from streams.codec import AvroCodec
from streams.errors import CodecError
from streams.topics import validate_miner_id

REGISTRATION = "riskstream.MinerRegistration"


def apply_registration(table: Any, codec: AvroCodec, key: bytes | None, value: bytes | None) -> str:
    """Record or withdraw one registration; returns the miner id, raises ``CodecError`` for bad input."""
    try:
        miner_id = validate_miner_id((key or b"").decode())
    except (UnicodeDecodeError, ValueError) as exc:
        msg = f"registration key is not a miner id: {exc}"
        raise CodecError(msg) from exc
    if value is None:
        if table.get(miner_id) is not None:
            del table[miner_id]
        return miner_id
    decoded = codec.decode(value)
    if decoded.name != REGISTRATION or decoded.record["miner_id"] != miner_id:
        msg = f"expected a {REGISTRATION} of {miner_id}, got {decoded.name} of {decoded.record.get('miner_id')!r}"
        raise CodecError(msg)
    record = decoded.record
    table[miner_id] = {
        "profile": record["profile"],
        "networks": list(record["networks"]),
        "model_versions": dict(record["model_versions"]),
        "registered_at": int(record["registered_at"].timestamp() * 1000),
    }
    return miner_id


def miners_to_wait_for(configured: list[str], table: Any) -> list[str]:
    """The miners a round waits for: configured in settings, or registered."""
    return sorted(set(configured) | set(table.keys()))
