"""Operator commands to the validator on ``validator.control`` (JSON, key ``network:date``).

producer.send(topics.validator_control, batch_key(n, d), ReplayCommand(n, d).to_json())
parse_command(value)   # -> ReplayCommand, or ControlError with the reason
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import orjson

from streams.batch import batch_key
from streams.errors import RiskstreamError
from streams.kafka import BatchProducer
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
    producer: BatchProducer, topics: TopicNames, network: str, date: dt.date, *, reweigh: bool = False
) -> None:
    """Ask the validator to re-read ``date`` from the miner topics and emit a new ensemble version."""
    command = ReplayCommand(network, date, reweigh)
    producer.send(topics.validator_control, batch_key(network, date), command.to_json())
    producer.flush()
