"""Replay requests to the validator, and the re-read of a date's miner records for a replay.

The command format itself is ``streams.control`` (``riskstream replay`` sends it too).

records = read_date(servers, index_entry, date, "ethereum", codec)
"""

from __future__ import annotations

import datetime as dt

from streams.codec import AvroCodec
from streams.errors import CodecError
from streams.kafka import RangeReader
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
    """Records of ``date``/``network`` from each (topic, partition) from its first offset to the end."""
    starts = {topic: {int(p): int(offset) for p, offset in parts.items()} for topic, parts in start.items()}
    found: list[InboxRecord] = []
    with RangeReader(bootstrap_servers, starts, idle_s=idle_s) as reader:
        for batch in reader.batches(timeout_s):
            found.extend(
                InboxRecord(m.key, m.value, m.topic, m.partition, m.offset, m.headers)
                for m in batch
                if _belongs(codec, m.value, date, network)
            )
    if not reader.reached_end:
        msg = f"replay of {date} did not reach the end of the miner topics in {timeout_s}s"
        raise ReplayError(msg)
    found.sort(key=lambda r: (r.topic, r.partition, r.offset))
    return found
