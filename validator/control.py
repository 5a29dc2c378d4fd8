"""Replay requests to the validator, and the re-read of a date's miner records for a replay.

The command format itself is ``streams.control`` (``riskstream replay`` sends it too).

records = read_date(servers, index_entry, date, "ethereum", codec)
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import confluent_kafka

from streams.codec import AvroCodec
from streams.errors import CodecError, KafkaError
from validator.bridge import InboxRecord
from validator.errors import ReplayError


def _belongs(codec: AvroCodec, value: bytes | None, date: dt.date, network: str) -> bool:
    try:
        record = codec.decode(value).record
    except CodecError:
        return False  # dead-lettered when it first arrived
    return bool(record.get("processing_date") == date and record.get("network") == network)


def read_date(
    bootstrap_servers: str,
    start: dict[str, dict[str, int]],
    date: dt.date,
    network: str,
    codec: AvroCodec,
    *,
    idle_s: float = 1.0,
    timeout_s: float = 120.0,
) -> list[InboxRecord]:
    """Records of ``date``/``network`` from each (topic, partition) from its first offset to the end.

    The end is where the partition goes quiet after its high watermark: some brokers report a
    watermark short of the last batch, so reading stops on silence, not on the watermark alone.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": f"riskstream-replay-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    }
    consumer = confluent_kafka.Consumer(config)
    found: list[InboxRecord] = []
    try:
        assignment = [
            confluent_kafka.TopicPartition(topic, int(p), int(offset))
            for topic, parts in sorted(start.items())
            for p, offset in sorted(parts.items())
        ]
        if not assignment:
            return []
        ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10.0)[1] for tp in assignment}
        consumer.assign(assignment)
        position = {(tp.topic, tp.partition): tp.offset for tp in assignment}
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.consume(5000, timeout=0.2)
            got = False
            for m in batch:
                error = m.error()
                if error is not None:
                    if error.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        continue
                    msg = f"replay read failed: {error}"
                    raise KafkaError(msg)
                got = True
                topic, partition, offset = str(m.topic()), int(m.partition() or 0), int(m.offset() or 0)
                position[(topic, partition)] = offset + 1
                if _belongs(codec, m.value(), date, network):
                    found.append(InboxRecord(m.key(), m.value(), topic, partition, offset))
            if got:
                quiet_since = time.monotonic()
            reached = all(position[tp] >= end for tp, end in ends.items())
            if reached and time.monotonic() - quiet_since >= idle_s:
                break
        else:
            msg = f"replay of {date} did not reach the end of the miner topics in {timeout_s}s"
            raise ReplayError(msg)
    except confluent_kafka.KafkaException as exc:
        msg = f"replay read failed: {exc}"
        raise KafkaError(msg) from exc
    finally:
        consumer.close()
    found.sort(key=lambda r: (r.topic, r.partition, r.offset))
    return found
