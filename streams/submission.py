"""How a miner's submission is cut into Avro chunks, keyed, and checksummed.

Every miner buckets entity ids the same way (``score_bucket``) and keys chunks
``date:bucket``, so the same alert of every miner lands in the same partition number
(co-partitioned topics). One chunk carries up to ``chunk_size`` aligned ids and scores, which
keeps the consumer's per-record work per batch instead of per alert.

    for bucket, chunk, idx in split_into_chunks(alert_ids, buckets=16, chunk_size=1000):
        send(score_key(date, bucket), ids[idx], scores[idx])
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

COMPLETE_KEY_SUFFIX = "complete"


def score_key(date: dt.date, bucket: int) -> str:
    return f"{date.isoformat()}:{bucket:04d}"


def complete_key(date: dt.date) -> str:
    return f"{date.isoformat()}:{COMPLETE_KEY_SUFFIX}"


def buckets_of(ids: Sequence[str], buckets: int) -> npt.NDArray[np.int64]:
    """Stable bucket of each id (crc32 mod buckets), identical in every miner and validator."""
    return np.fromiter((zlib.crc32(i.encode()) % buckets for i in ids), dtype=np.int64, count=len(ids))


def split_into_chunks(
    ids: Sequence[str], buckets: int, chunk_size: int
) -> Iterator[tuple[int, int, npt.NDArray[np.int64]]]:
    """(bucket, chunk index, positions into ``ids``) with ids sorted inside each bucket."""
    of = buckets_of(ids, buckets)
    order = np.lexsort((np.asarray(ids, dtype=object).astype(str), of))
    for bucket in range(buckets):
        positions = order[of[order] == bucket]
        for chunk, start in enumerate(range(0, len(positions), chunk_size)):
            yield bucket, chunk, positions[start : start + chunk_size]


def submission_checksum(
    alert_ids: Sequence[str],
    alert_scores: Sequence[float],
    cluster_ids: Sequence[str] = (),
    cluster_scores: Sequence[float] = (),
) -> str:
    """sha256 over ``alert:<id>:<score>`` then ``cluster:<id>:<score>`` lines, sorted by id."""
    digest = hashlib.sha256()
    for kind, ids, scores in (("alert", alert_ids, alert_scores), ("cluster", cluster_ids, cluster_scores)):
        for entity_id, score in sorted(zip(ids, scores, strict=True)):
            digest.update(f"{kind}:{entity_id}:{float(score)!r}\n".encode())
    return digest.hexdigest()
