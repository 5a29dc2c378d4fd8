"""Replay requests to the validator: who may ask (operators, rate-limited), and the re-read of a date.

The command format itself is ``streams.control`` (``riskstream replay`` sends it too). A command,
or a repeat batch announcement for a date already emitted, is served only if an operator key
signed it, recently, and the date has not been redone ``per_date`` times within the window.

authority.authorise(CONTROL, key, value, headers, date, now_ms)
records = read_date(servers, index_entry, date, "ethereum", codec)
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import Any

from streams.codec import AvroCodec
from streams.errors import CodecError
from streams.kafka_readers import RangeReader
from streams.signing import SignatureError, claim_of, verify
from validator.bridge import InboxRecord
from validator.errors import ControlRefused, ReplayError


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


class ControlAuthority:
    """Who may make the validator redo a date: an operator key, fresh, at most ``per_date`` times per window.

    authority = ControlAuthority(lambda: operator_keys(stack), per_date=3, window_s=3600)
    authority.authorise(CONTROL, key, value, headers, date, now_ms)    # raises ControlRefused with the reason
    """

    def __init__(
        self,
        keys: Callable[[], Mapping[str, str]],
        *,
        per_date: int = 3,
        window_s: float = 3600.0,
        max_age_s: float = 300.0,
    ) -> None:
        self.keys = keys
        self.per_date = per_date
        self.window_ms = int(window_s * 1000)
        self.max_age_ms = int(max_age_s * 1000)
        self._accepted: dict[str, deque[int]] = {}
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def authorise(
        self, purpose: str, key: bytes | None, value: bytes | None, headers: Any, date: dt.date, now_ms: int
    ) -> str:
        """The operator who signed this command for ``date``; ``ControlRefused`` if it must not be served."""
        try:
            claim = claim_of(headers)
        except SignatureError as exc:
            raise ControlRefused(str(exc)) from exc
        public = self.keys().get(claim.signer)
        if public is None:
            msg = f"{claim.signer!r} is not an operator"
            raise ControlRefused(msg)
        try:
            verify(public, purpose, claim.signer, key, value, headers)
        except SignatureError as exc:
            raise ControlRefused(str(exc)) from exc
        if claim.date != date.isoformat():
            msg = f"signed for {claim.date or 'no date'}, not {date}"
            raise ControlRefused(msg)
        if abs(now_ms - claim.signed_at_ms) > self.max_age_ms:
            msg = f"signed {(now_ms - claim.signed_at_ms) / 1000:.0f}s from now: too old or from the future"
            raise ControlRefused(msg)
        if claim.signature in self._seen:
            msg = "this signed command was already served"
            raise ControlRefused(msg)
        recent = self._accepted.setdefault(date.isoformat(), deque())
        while recent and recent[0] <= now_ms - self.window_ms:
            recent.popleft()
        if len(recent) >= self.per_date:
            msg = f"{len(recent)} replays of {date} in the last {self.window_ms // 1000}s: limit reached"
            raise ControlRefused(msg)
        recent.append(now_ms)
        self._seen[claim.signature] = None
        while len(self._seen) > 10_000:
            self._seen.popitem(last=False)
        return claim.signer
