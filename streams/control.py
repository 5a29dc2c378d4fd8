"""Operator commands to the validator on ``validator.control`` (JSON, key ``network:date``), operator-signed.

A command counts only with the signature of an operator key (``streams.signing``, purpose
``control``, the command's date); the validator also limits how many it serves per date.

    request_replay(producer, topics, "ethereum", date, operator_signer(stack))
    parse_command(value)   # -> ReplayCommand, or ControlError with the reason
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import orjson

from streams.batch import batch_key
from streams.errors import RiskstreamError
from streams.kafka import Producer
from streams.settings import StackSettings
from streams.signing import CONTROL, OPERATOR, SignatureError, Signer, key_path, load_or_create_key, read_public_key
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
