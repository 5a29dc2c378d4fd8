"""Is this broker's log the one our local state was built on? A token written once, checked at every start.

A stateful service (the validator: tables rebuilt from changelog topics, an offset index)
must not run on a broker that lost its log (a memory broker restarted, a wiped volume): Faust
would recover empty tables and ship an all-zero ensemble, or crash on a changelog offset
"higher than the highwater". At its first start the service writes a random token to the
``state-epochs`` topic (key: its id) and keeps it in its data dir; later starts (and a
periodic check while it runs) read the topic back: a local token the broker does not have
means the log is gone, and the service stops with one line saying what to do.

    check_epoch(servers, topics.state_epochs, "riskstream-validator", data_dir / "broker-epoch")
"""

from __future__ import annotations

import uuid
from pathlib import Path

from streams.errors import KafkaError, StackError
from streams.kafka import BatchProducer
from streams.kafka_admin import ensure_topics, partitions_of
from streams.kafka_readers import RangeReader


class LostLogError(StackError):
    """The broker no longer holds the log this service's local state was built from."""


def _tokens(bootstrap_servers: str, topic: str, key: str) -> set[str]:
    starts = {topic: dict.fromkeys(partitions_of(bootstrap_servers, topic), 0)}
    with RangeReader(bootstrap_servers, starts, idle_s=0.5) as reader:
        return {
            (m.value or b"").decode() for batch in reader.batches(30.0) for m in batch if (m.key or b"").decode() == key
        }


def read_token(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def check_epoch(bootstrap_servers: str, topic: str, key: str, path: Path, *, remedy: str = "") -> str:
    """The token shared by the broker's log and ``path``; raises ``LostLogError`` if the log lost it."""
    ensure_topics(bootstrap_servers, [topic], partitions=1)
    local = read_token(path)
    on_broker = _tokens(bootstrap_servers, topic, key)
    if on_broker is None:
        msg = f"cannot read {topic} on {bootstrap_servers} to its end: is the broker up?"
        raise StackError(msg)
    if local is not None and local not in on_broker:
        msg = (
            f"the broker at {bootstrap_servers} no longer holds the log that {key}'s state in {path.parent} "
            f"was built on (its token {local[:8]} is missing from {topic}): the broker lost its data. "
            f"{remedy or f'Restore the broker log, or remove {path.parent} and replay the dates to rebuild.'}"
        )
        raise LostLogError(msg)
    if local is not None:
        return local
    token = uuid.uuid4().hex
    producer = BatchProducer(bootstrap_servers)
    producer.send(topic, key, token.encode())
    producer.flush(30.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token + "\n")
    return token


def epoch_present(bootstrap_servers: str, topic: str, key: str, token: str) -> bool:
    """While running: does the broker still hold ``token``? (False only on a complete read without it.)"""
    try:
        found = _tokens(bootstrap_servers, topic, key)
    except KafkaError:  # unreachable or mid-restart: no answer is not a "no"
        return True
    return found is None or token in found
