"""Watermarks: how far the validator has provably read its inputs, so a round closes only when caught up.

The bridge, whenever it has forwarded every miner record that was on the broker at a time ``t``
(each assigned partition read up to the end offset it asked for after ``t``), writes a signed
marker carrying ``t`` to every inbox partition. Kafka keeps order within a partition, so once the
inbox agent has seen a marker ``>= t`` on every partition, every record that reached the broker
before ``t`` has been ingested. A round closes at its deadline only then: a validator restarted
after the deadline first reads what arrived while it was down.

    marks = Watermarks(partitions=4)
    marks.advance(inbox_partition, t)      # a marker read from the inbox
    marks.caught_up(deadline_ms)           # every partition past the deadline?
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.signing import INBOX, SignatureError, Signer, claim_of, verify_forwarded

WATERMARK = "watermark"  # the bridge signs a marker with this in place of a source position
MARKER_VALUE = b"riskstream.watermark"


def marker_headers(signer: Signer, at_ms: int, partition: int) -> list[tuple[str, bytes]]:
    """The signed headers of a marker saying: everything on the broker before ``at_ms`` is forwarded."""
    return list(signer.headers(INBOX, None, MARKER_VALUE, batch_id=f"{WATERMARK}:{partition}", signed_at_ms=at_ms))


def watermark_of(public_key: str, key: bytes | None, value: bytes | None, headers: Any) -> int | None:
    """The time a bridge marker vouches for, or None if this inbox record is not a (valid) marker."""
    if value != MARKER_VALUE or key is not None:
        return None
    try:
        source = verify_forwarded(public_key, key, value, headers)
    except SignatureError:
        return None
    if not source.startswith(WATERMARK + ":"):
        return None
    return int(claim_of(headers).signed_at_ms)


@dataclass
class Watermarks:
    """The latest marker time seen on each inbox partition (kept in memory: after a restart the
    validator waits for fresh markers, which the bridge sends only once it has caught up)."""

    partitions: int
    latest: dict[int, int] = field(default_factory=dict)

    def advance(self, partition: int, at_ms: int) -> None:
        self.latest[partition] = max(at_ms, self.latest.get(partition, at_ms))

    @property
    def read_up_to(self) -> int:
        """Every record that reached the broker before this time (ms) has been ingested (0: unknown)."""
        if len(self.latest) < self.partitions:
            return 0
        return min(self.latest.values())

    def caught_up(self, at_ms: int) -> bool:
        return self.read_up_to >= at_ms
