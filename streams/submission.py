"""How a submission is cut into Avro chunks, keyed, ranked and checksummed: the one home of these rules.

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
import pyarrow as pa
import pyarrow.compute as pc

from streams.errors import SubmissionError

COMPLETE_KEY_SUFFIX = "complete"


def score_key(date: dt.date, bucket: int) -> str:
    return f"{date.isoformat()}:{bucket:04d}"


def complete_key(date: dt.date) -> str:
    return f"{date.isoformat()}:{COMPLETE_KEY_SUFFIX}"


def bucket_of_key(key: bytes | str | None) -> int | None:
    """The bucket a chunk's key ``date:bucket`` names (None: a completion marker's key, or no chunk key)."""
    text = key.decode(errors="replace") if isinstance(key, bytes) else key or ""
    tail = text.rsplit(":", 1)[-1] if ":" in text else ""
    return int(tail) if tail.isascii() and tail.isdigit() else None


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


def rank_order(ids: Sequence[str], scores: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Positions of ``ids`` from the highest score to the lowest, equal scores by ascending id.

    Ids compare by Unicode code point, which is the order of their UTF-8 bytes; NaN sorts last.
    """
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int64)
    values = np.asarray(scores, dtype=np.float64)
    return np.lexsort((np.asarray(ids, dtype=str), -values)).astype(np.int64)


def rank_by_score(ids: Sequence[str], scores: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """1-based rank of each id over the whole set: highest score first, ties by ascending id."""
    order = rank_order(ids, scores)
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[order] = np.arange(1, len(ids) + 1)
    return ranks


# the layout's index arrays take ~24 bytes per id byte: laid out in slices of entries they stay a few
# MiB, whatever the number of alerts (one buffer for 100k alerts took ~50 MiB at once)
ENTRY_SLICE = 8_192


def _entries(tag: bytes, ids: Sequence[str], scores: Sequence[float]) -> Iterator[bytes]:
    """Every entry of one kind, in checksum order, ``ENTRY_SLICE`` entries to a buffer (Arrow and numpy)."""
    kind = {b"a": "alert", b"c": "cluster"}[tag]
    values = np.asarray(scores, dtype=np.float64)
    if len(ids) != values.size:
        msg = f"{len(ids)} {kind} ids but {values.size} scores"
        raise SubmissionError(msg)
    if not np.isfinite(values).all():
        msg = f"{int((~np.isfinite(values)).sum())} {kind} scores are NaN or infinite: no checksum exists"
        raise SubmissionError(msg)
    values = values + 0.0  # -0.0 becomes +0.0: equal scores give equal bytes
    names = pa.array(ids, pa.large_string())  # Arrow orders strings by their UTF-8 bytes
    order = pc.sort_indices(pa.table({"id": names, "score": values}), [("id", "ascending"), ("score", "ascending")])
    names = names.take(order)
    ordered = values[order.to_numpy()]
    for start in range(0, len(names), ENTRY_SLICE):
        yield _layout(tag, names.slice(start, ENTRY_SLICE), ordered[start : start + ENTRY_SLICE])


def _layout(tag: bytes, names: pa.LargeStringArray, ordered: npt.NDArray[np.float64]) -> bytes:
    """``tag || uint32-LE(len(id)) || id || float64-LE(score)`` for each (id, score), one buffer."""
    offsets = np.frombuffer(names.buffers()[1], dtype=np.int64)[names.offset : names.offset + len(names) + 1]
    data = np.frombuffer(names.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    lengths = np.diff(offsets)
    sizes = 1 + 4 + lengths + 8  # tag, uint32-LE length, id bytes, float64-LE score
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    out = np.empty(int(sizes.sum()), dtype=np.uint8)
    out[starts] = tag[0]
    out[starts[:, None] + 1 + np.arange(4)] = lengths.astype("<u4").view(np.uint8).reshape(-1, 4)
    out[np.repeat(starts + 5 - offsets[:-1], lengths) + np.arange(offsets[0], offsets[-1])] = data
    out[(starts + 5 + lengths)[:, None] + np.arange(8)] = ordered.astype("<f8").view(np.uint8).reshape(-1, 8)
    return out.tobytes()


def submission_checksum(
    alert_ids: Sequence[str],
    alert_scores: Sequence[float],
    cluster_ids: Sequence[str] = (),
    cluster_scores: Sequence[float] = (),
) -> str:
    """Lower-case hex SHA-256 of every entity's entry, alerts first, then clusters (docs/miner-protocol.md).

    An entry is ``tag || uint32-LE(len(id)) || id || float64-LE(score)``: tag ``a`` (0x61) for an
    alert, ``c`` (0x63) for a cluster, the id as UTF-8, the score as IEEE-754 binary64 little-endian
    with -0.0 written as 0.0. Entries of one kind are ordered by id bytes ascending (equal ids by
    score). A NaN or infinite score has no checksum: ``SubmissionError``.
    """
    digest = hashlib.sha256()
    for tag, ids, scores in ((b"a", alert_ids, alert_scores), (b"c", cluster_ids, cluster_scores)):
        for part in _entries(tag, ids, scores):
            digest.update(part)
    return digest.hexdigest()
