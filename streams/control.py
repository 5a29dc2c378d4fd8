"""Operator commands to the validator on ``validator.control`` (JSON, key ``network:date``), operator-signed.

A command counts only with the signature of an operator key (``streams.signing``, purpose
``control``, the command's date); the validator also limits how many it serves per date.

    request_replay(producer, topics, "ethereum", date, operator_signer(stack))
    parse_command(value)   # -> ReplayCommand, or ControlError with the reason
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from streams.batch import batch_key
from streams.errors import RiskstreamError
from streams.kafka import Producer
from streams.settings import StackSettings
from streams.signing import (
    CONTROL,
    OPERATOR,
    SignatureError,
    Signer,
    claim_of,
    key_path,
    load_or_create_key,
    read_public_key,
    verify,
)
from streams.topics import TopicNames

REPLAY = "replay"


class ControlError(RiskstreamError):
    """A control record that is not a command we know."""


@dataclass(frozen=True, slots=True)
class ReplayCommand:
    """Re-read one date from the miner topics and emit its ensemble as a new version."""

    network: str
    date: dt.date
    reweigh: bool = False  # apply today's weights instead of those of the version replayed

    def to_json(self) -> bytes:
        body: dict[str, object] = {"command": REPLAY, "network": self.network, "date": self.date.isoformat()}
        if self.reweigh:
            body["reweigh"] = True
        return orjson.dumps(body)


def parse_command(data: bytes | None) -> ReplayCommand:
    try:
        body = orjson.loads(data or b"")
        if body.get("command") != REPLAY:
            msg = f"unknown command {body.get('command')!r}"
            raise ControlError(msg)
        reweigh = body.get("reweigh", False)
        if not isinstance(reweigh, bool):
            msg = f"reweigh must be true or false, not {reweigh!r}"
            raise ControlError(msg)
        return ReplayCommand(str(body["network"]), dt.date.fromisoformat(str(body["date"])), reweigh)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        msg = f"not a control command: {type(exc).__name__}: {exc}"
        raise ControlError(msg) from exc


def request_replay(
    producer: Producer, topics: TopicNames, network: str, date: dt.date, signer: Signer, *, reweigh: bool = False
) -> None:
    """Ask the validator to re-read ``date`` from the miner topics and emit a new ensemble version."""
    key, value = batch_key(network, date), ReplayCommand(network, date, reweigh).to_json()
    producer.send(topics.validator_control, key, value, headers=signer.headers(CONTROL, key, value, date=date))
    producer.flush()


class OperatorCheck:
    """Did an operator sign this repeat announcement, recently, and is this the first time it is seen?

    check = OperatorCheck(lambda: operator_keys(stack))
    check.signed(REANNOUNCE, key, value, headers, now_ms)    # True / False
    """

    def __init__(self, keys: Callable[[], Mapping[str, str]], max_age_s: float = 300.0) -> None:
        self.keys = keys
        self.max_age_ms = int(max_age_s * 1000)
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def signed(self, purpose: str, key: bytes | None, value: bytes | None, headers: Any, now_ms: int) -> bool:
        try:
            claim = claim_of(headers)
            public = self.keys().get(claim.signer)
            if public is None:
                return False
            verify(public, purpose, claim.signer, key, value, headers)
        except SignatureError:
            return False
        if abs(now_ms - claim.signed_at_ms) > self.max_age_ms or claim.signature in self._seen:
            return False
        self._seen[claim.signature] = None
        while len(self._seen) > 10_000:
            self._seen.popitem(last=False)
        return True


def operator_signer(stack: StackSettings, name: str = OPERATOR) -> Signer:
    """The local operator's signer: ``<home>/keys/operator.key`` (created on first use)."""
    return Signer(load_or_create_key(key_path(stack.home, OPERATOR)), name)


def operator_keys(stack: StackSettings) -> dict[str, str]:
    """Operator name -> public key allowed to sign commands: configured, else the local operator's if it exists."""
    if stack.operator_keys:
        return dict(stack.operator_keys)
    try:
        return {OPERATOR: read_public_key(key_path(stack.home, OPERATOR))}
    except SignatureError:
        return {}
