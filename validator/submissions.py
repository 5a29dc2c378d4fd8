"""One round's submissions: stored chunks decoded per miner and aligned into score matrices.

subs = collect_submissions(stored_chunks, codec)           # miner id -> Submission
aligned = align(batch.alert_ids, sub.alert_ids, sub.alert_scores)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.codec import AvroCodec, Decoded
from streams.errors import CodecError
from streams.records import ALERT_SCORE_BATCH, CLUSTER_SCORE_BATCH
from validator.tables import SEP, StoredChunk, source_position

Floats = npt.NDArray[np.float64]
Strings = npt.NDArray[np.str_]


@dataclass
class Submission:
    """Everything one miner sent for one round, concatenated in chunk-key order."""

    miner_id: str
    alert_ids: list[str] = field(default_factory=list)
    alert_scores: list[float] = field(default_factory=list)
    alert_ranks: list[float] = field(default_factory=list)
    cluster_ids: list[str] = field(default_factory=list)
    cluster_scores: list[float] = field(default_factory=list)
    alert_chunks: int = 0
    cluster_chunks: int = 0
    model_versions: set[str] = field(default_factory=set)
    last_produced_ms: int = 0


@dataclass(frozen=True, slots=True)
class Aligned:
    """A miner's values placed on the batch's sorted ids (NaN where absent)."""

    values: Floats
    known: int  # ids found in the batch
    unknown: int
    duplicates: int


def _millis(value: object) -> int:
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    return int(value) if isinstance(value, int | float) else 0


def collect_submissions(
    stored: Iterable[tuple[str, Any]], codec: AvroCodec, decoded: Mapping[str, tuple[str, Decoded]] | None = None
) -> dict[str, Submission]:
    """Decode stored chunks (key order) into one Submission per miner; undecodable ones are skipped.

    ``decoded`` holds chunks already decoded on arrival (chunk key -> (source position, record)):
    one is used only if it is the record stored under that key now. Chunks were decoded once
    already on arrival, so a failure here means a corrupted table.
    """
    found: dict[str, Submission] = {}
    known = decoded or {}
    for key, value in stored:
        miner_id = key.split(SEP)[2]
        try:
            cached = known.get(key)
            if cached is not None and cached[0] == source_position(str(value["t"]), int(value["p"]), int(value["o"])):
                record = cached[1]
            else:
                record = codec.decode(StoredChunk.from_value(value).data)
        except (CodecError, ValueError, KeyError, TypeError):
            continue
        sub = found.setdefault(miner_id, Submission(miner_id))
        body = record.record
        sub.model_versions.add(str(body.get("model_version", "")))
        sub.last_produced_ms = max(sub.last_produced_ms, _millis(body.get("produced_at")))
        if record.name == ALERT_SCORE_BATCH:
            sub.alert_ids.extend(body["alert_ids"])
            sub.alert_scores.extend(body["scores"])
            sub.alert_ranks.extend(float(r) for r in body["ranks"])
            sub.alert_chunks += 1
        elif record.name == CLUSTER_SCORE_BATCH:
            sub.cluster_ids.extend(body["cluster_ids"])
            sub.cluster_scores.extend(body["scores"])
            sub.cluster_chunks += 1
    return found


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a miner's ids fall on the batch's sorted ids; reused for every aligned column."""

    size: int
    positions: npt.NDArray[np.int64]
    known: npt.NDArray[np.bool_]

    def place(self, values: Sequence[float] | Floats) -> Aligned:
        row = np.full(self.size, np.nan)
        if len(self.known):
            row[self.positions[self.known]] = np.asarray(values, dtype=np.float64)[self.known]
        hit = np.zeros(self.size, dtype=bool)
        hit[self.positions[self.known]] = True
        unique_known = int(hit.sum())
        return Aligned(row, unique_known, int((~self.known).sum()), int(self.known.sum()) - unique_known)


def placement(batch_ids: Strings, ids: Sequence[str]) -> Placement:
    given = np.asarray(ids, dtype=str) if len(ids) else np.zeros(0, dtype=str)
    pos = np.searchsorted(batch_ids, given) if len(batch_ids) else np.zeros(len(given), dtype=np.int64)
    inside = pos < len(batch_ids)
    known = np.zeros(len(given), dtype=bool)
    known[inside] = batch_ids[pos[inside]] == given[inside]
    return Placement(len(batch_ids), pos.astype(np.int64), known)


def align(batch_ids: Strings, ids: Sequence[str], values: Sequence[float] | Floats) -> Aligned:
    """Place ``values`` on ``batch_ids`` (sorted unique); later duplicates win."""
    return placement(batch_ids, ids).place(values)
