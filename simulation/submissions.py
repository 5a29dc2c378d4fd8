"""A synthetic miner's submission as wire records: bucketed score chunks and the completion marker.

The records follow ``streams.submission`` (buckets, chunking, checksum), so the validator sees
exactly what a miner publishes.

    records = submission_records(codec, batch, "m1", alert_scores, cluster_scores, produced_at)
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt

from simulation.batches import SyntheticBatch
from streams.codec import AvroCodec
from streams.records import ALERT_SCORE_BATCH, CLUSTER_SCORE_BATCH, SUBMISSION_COMPLETE
from streams.submission import complete_key, rank_by_score, score_key, split_into_chunks, submission_checksum

Floats = npt.NDArray[np.float64]


def submission_records(
    codec: AvroCodec,
    batch: SyntheticBatch,
    miner_id: str,
    alert_scores: Floats,
    cluster_scores: Floats,
    produced_at: dt.datetime,
    *,
    buckets: int = 16,
    chunk_size: int = 1000,
    model_version: str = "v1",
) -> list[tuple[str, bytes]]:
    """(key, value) of every chunk and the completion marker, as a miner sends them."""
    ids = batch.alert_ids
    ranks = rank_by_score(ids, alert_scores)
    common = {
        "network": batch.network,
        "processing_date": batch.date,
        "window_days": batch.window_days,
        "batch_id": batch.batch_id,
        "miner_id": miner_id,
        "model_version": model_version,
        "latency_ms": 0.0,
        "produced_at": produced_at,
    }
    out: list[tuple[str, bytes]] = []
    alert_chunks = cluster_chunks = 0
    for bucket, chunk, pos in split_into_chunks(ids, buckets, chunk_size):
        record = {
            **common,
            "bucket": bucket,
            "chunk": chunk,
            "alert_ids": [ids[p] for p in pos],
            "scores": [float(alert_scores[p]) for p in pos],
            "ranks": [int(ranks[p]) for p in pos],
        }
        out.append((score_key(batch.date, bucket), codec.encode(ALERT_SCORE_BATCH, record)))
        alert_chunks += 1
    cids = batch.cluster_ids
    for bucket, chunk, pos in split_into_chunks(cids, buckets, chunk_size):
        record = {
            **common,
            "bucket": bucket,
            "chunk": chunk,
            "cluster_ids": [cids[p] for p in pos],
            "scores": [float(cluster_scores[p]) for p in pos],
        }
        out.append((score_key(batch.date, bucket), codec.encode(CLUSTER_SCORE_BATCH, record)))
        cluster_chunks += 1
    marker = {
        key: common[key]
        for key in ("network", "processing_date", "window_days", "batch_id", "miner_id", "latency_ms", "produced_at")
    }
    marker.update(
        alert_count=len(ids),
        cluster_count=len(cids),
        alert_chunks=alert_chunks,
        cluster_chunks=cluster_chunks,
        model_versions={"alert_scorer": model_version},
        checksum=submission_checksum(ids, [float(s) for s in alert_scores], cids, [float(s) for s in cluster_scores]),
    )
    out.append((complete_key(batch.date), codec.encode(SUBMISSION_COMPLETE, marker)))
    return out
