"""A submission as records: AlertScoreBatch and ClusterScoreBatch chunks, then SubmissionComplete.

for record in submission_records(scores, manifest=m, miner_id="m1", buckets=16, chunk_size=1000, ...):
    producer.send(topic, record.key, codec.encode(record.schema, record.value))
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from miner.scoring import BatchScores
from streams.batch import Manifest
from streams.records import (
    ALERT_SCORE_BATCH,
    CLUSTER_SCORE_BATCH,
    MINER_ERROR,
    MINER_HEARTBEAT,
    MINER_REGISTRATION,
    SUBMISSION_COMPLETE,
)
from streams.submission import complete_key, score_key, split_into_chunks, submission_checksum


@dataclass(frozen=True, slots=True)
class OutRecord:
    key: str
    schema: str  # full Avro record name
    value: dict[str, Any]


def submission_records(
    scores: BatchScores,
    *,
    manifest: Manifest,
    miner_id: str,
    buckets: int,
    chunk_size: int,
    latency_ms: float,
    produced_at: dt.datetime,
) -> list[OutRecord]:
    """Every record of one submission, the completion marker last."""
    date = manifest.processing_date
    common = {
        "network": manifest.network,
        "processing_date": date,
        "window_days": manifest.window_days,
        "batch_id": manifest.batch_id,
        "miner_id": miner_id,
        "latency_ms": float(latency_ms),
        "produced_at": produced_at,
    }
    versions = scores.model_versions
    ranks = scores.ranks()
    records: list[OutRecord] = []
    for bucket, chunk, idx in split_into_chunks(scores.alert_ids, buckets=buckets, chunk_size=chunk_size):
        value = {
            **common,
            "model_version": versions.get("alert_scorer", ""),
            "bucket": bucket,
            "chunk": chunk,
            "alert_ids": [scores.alert_ids[i] for i in idx],
            "scores": [float(s) for s in scores.alert_scores[idx]],
            "ranks": [int(r) for r in ranks[idx]],
        }
        records.append(OutRecord(score_key(date, bucket), ALERT_SCORE_BATCH, value))
    alert_chunks = len(records)
    for bucket, chunk, idx in split_into_chunks(scores.cluster_ids, buckets=buckets, chunk_size=chunk_size):
        value = {
            **common,
            "model_version": versions.get("cluster_scorer", ""),
            "bucket": bucket,
            "chunk": chunk,
            "cluster_ids": [scores.cluster_ids[i] for i in idx],
            "scores": [float(s) for s in scores.cluster_scores[idx]],
        }
        records.append(OutRecord(score_key(date, bucket), CLUSTER_SCORE_BATCH, value))
    checksum = submission_checksum(
        scores.alert_ids, [float(s) for s in scores.alert_scores],
        scores.cluster_ids, [float(s) for s in scores.cluster_scores],
    )  # fmt: skip
    complete = {
        **common,
        "alert_count": len(scores.alert_ids),
        "cluster_count": len(scores.cluster_ids),
        "alert_chunks": alert_chunks,
        "cluster_chunks": len(records) - alert_chunks,
        "model_versions": dict(versions),
        "checksum": checksum,
    }
    records.append(OutRecord(complete_key(date), SUBMISSION_COMPLETE, complete))
    return records


def error_record(
    *,
    miner_id: str,
    key: str,
    object_key: str,
    error: BaseException,
    occurred_at: dt.datetime,
    manifest: Manifest | None = None,
) -> OutRecord:
    value = {
        "miner_id": miner_id,
        "network": manifest.network if manifest else None,
        "processing_date": manifest.processing_date if manifest else None,
        "batch_key": object_key,
        "error_type": type(error).__name__,
        "message": str(error),
        "occurred_at": occurred_at,
    }
    return OutRecord(key, MINER_ERROR, value)


def registration_record(
    *,
    miner_id: str,
    profile: str,
    network: str,
    model_versions: dict[str, str],
    registered_at: dt.datetime,
    public_key: str = "",
) -> OutRecord:
    """The announcement a miner sends when it starts serving (key: its id), with the key it signs with."""
    value = {
        "miner_id": miner_id,
        "profile": profile,
        "networks": [network],
        "model_versions": dict(model_versions),
        "registered_at": registered_at,
        "public_key": public_key,
    }
    return OutRecord(miner_id, MINER_REGISTRATION, value)


def heartbeat_record(*, miner_id: str, sent_at: dt.datetime) -> OutRecord:
    """The signed "still serving" a miner sends every ``heartbeat_s`` (key: its id)."""
    return OutRecord(miner_id, MINER_HEARTBEAT, {"miner_id": miner_id, "sent_at": sent_at})
