"""One round's submissions: stored chunks decoded per miner and aligned into score matrices.

subs = collect_submissions(stored_chunks, codec)           # miner id -> Submission
aligned = align(batch.alert_ids, sub.alert_ids, sub.alert_scores)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.codec import AvroCodec
from streams.errors import CodecError
from validator.tables import SEP, StoredChunk

Floats = npt.NDArray[np.float64]
Strings = npt.NDArray[np.str_]
ALERT_RECORD = "riskstream.AlertScoreBatch"
CLUSTER_RECORD = "riskstream.ClusterScoreBatch"
COMPLETE_RECORD = "riskstream.SubmissionComplete"


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


def collect_submissions(stored: Iterable[tuple[str, Any]], codec: AvroCodec) -> dict[str, Submission]:
    """Decode stored chunks (key order) into one Submission per miner; undecodable ones are skipped.

    Chunks were decoded once already on arrival, so a failure here means a corrupted table.
    """
    found: dict[str, Submission] = {}
    for key, value in stored:
        miner_id = key.split(SEP)[2]
        try:
            record = codec.decode(StoredChunk.from_value(value).data)
        except (CodecError, ValueError, KeyError):
            continue
        sub = found.setdefault(miner_id, Submission(miner_id))
        body = record.record
        sub.model_versions.add(str(body.get("model_version", "")))
        sub.last_produced_ms = max(sub.last_produced_ms, _millis(body.get("produced_at")))
        if record.name == ALERT_RECORD:
            sub.alert_ids.extend(body["alert_ids"])
            sub.alert_scores.extend(body["scores"])
            sub.alert_ranks.extend(float(r) for r in body["ranks"])
            sub.alert_chunks += 1
        elif record.name == CLUSTER_RECORD:
            sub.cluster_ids.extend(body["cluster_ids"])
            sub.cluster_scores.extend(body["scores"])
            sub.cluster_chunks += 1
    return found


def align(batch_ids: Strings, ids: list[str], values: list[float]) -> Aligned:
    """Place ``values`` on ``batch_ids`` (sorted unique); later duplicates win."""
    row = np.full(len(batch_ids), np.nan)
    if not ids:
        return Aligned(row, 0, 0, 0)
    given = np.asarray(ids, dtype=str)
    vals = np.asarray(values, dtype=np.float64)
    pos = np.searchsorted(batch_ids, given) if len(batch_ids) else np.zeros(len(given), dtype=np.int64)
    inside = pos < len(batch_ids)
    known = np.zeros(len(given), dtype=bool)
    known[inside] = batch_ids[pos[inside]] == given[inside]
    row[pos[known]] = vals[known]
    unique_known = len(np.unique(pos[known]))
    return Aligned(row, unique_known, int((~known).sum()), int(known.sum()) - unique_known)
