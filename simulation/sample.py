"""Synthetic, wire-exact records of one validated date (what the validator and miners publish), for benches and tests.

for topic, key, value in sample_date(codec, TopicNames(), dt.date(2026, 1, 5), alerts=10_000):
    producer.send(topic, key, value)
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence

import numpy as np

from streams.codec import AvroCodec
from streams.kafka import Message
from streams.records import (
    ALERT_SCORE_BATCH,
    CLUSTER_SCORE_BATCH,
    ENSEMBLE_ALERT_SCORE,
    ENSEMBLE_BATCH,
    ENSEMBLE_CLUSTER_SCORE,
    SUBMISSION_COMPLETE,
    VALIDATION_RESULT,
)
from streams.signing import INBOX, Signer, output_purposes
from streams.submission import complete_key, rank_by_score, score_key, split_into_chunks
from streams.topics import TopicNames

Record = tuple[str, str, bytes]  # topic, key, Confluent-framed Avro value


def _ranks(ids: Sequence[str], scores: np.ndarray) -> np.ndarray:
    """1-based ranks by score descending, ties by id."""
    return rank_by_score(ids, scores)


def sample_date(
    codec: AvroCodec,
    topics: TopicNames,
    date: dt.date,
    *,
    alerts: int = 1_000,
    clusters: int = 50,
    miners: Sequence[str] = ("miner-a", "miner-b", "miner-c"),
    version: int = 1,
    network: str = "ethereum",
    seed: int = 0,
    ground_truth: bool = False,
) -> list[Record]:
    """Every record of one date: miner submissions, ensemble alerts/clusters, validation, then the batch marker."""
    rng = np.random.default_rng(seed)
    base = date.toordinal()
    produced = dt.datetime(date.year, date.month, date.day, 6, tzinfo=dt.UTC)
    batch_id = f"{network}-{date.isoformat()}"
    alert_ids = [f"alert-{base}-{i:06d}" for i in range(alerts)]
    cluster_ids = [f"cluster-{base}-{i:04d}" for i in range(clusters)]
    truth = rng.beta(0.6, 2.5, size=alerts)
    truth_clusters = rng.beta(0.8, 2.0, size=clusters)
    weights = rng.dirichlet(np.ones(len(miners)))
    out: list[Record] = []
    miner_alerts = np.clip(truth + rng.normal(0, 0.05, (len(miners), alerts)), 0, 1)
    miner_clusters = np.clip(truth_clusters + rng.normal(0, 0.05, (len(miners), clusters)), 0, 1)
    for m, miner_id in enumerate(miners):
        topic = topics.miner_scores(miner_id)
        scores, ranks = miner_alerts[m], _ranks(alert_ids, miner_alerts[m])
        chunks = 0
        for bucket, chunk, idx in split_into_chunks(alert_ids, buckets=16, chunk_size=1000):
            record = {
                "network": network, "processing_date": date, "window_days": 7, "batch_id": batch_id,
                "miner_id": miner_id, "model_version": "alert_scorer-1", "bucket": bucket, "chunk": chunk,
                "alert_ids": [alert_ids[i] for i in idx], "scores": scores[idx].tolist(),
                "ranks": ranks[idx].tolist(), "latency_ms": 1500.0, "produced_at": produced,
            }  # fmt: skip
            out.append((topic, score_key(date, bucket), codec.encode(ALERT_SCORE_BATCH, record)))
            chunks += 1
        cluster_record = {
            "network": network, "processing_date": date, "window_days": 7, "batch_id": batch_id,
            "miner_id": miner_id, "model_version": "cluster_scorer-1", "bucket": 0, "chunk": 0,
            "cluster_ids": cluster_ids, "scores": miner_clusters[m].tolist(), "latency_ms": 1500.0,
            "produced_at": produced,
        }  # fmt: skip
        out.append((topic, score_key(date, 0), codec.encode(CLUSTER_SCORE_BATCH, cluster_record)))
        complete = {
            "network": network, "processing_date": date, "window_days": 7, "batch_id": batch_id,
            "miner_id": miner_id, "alert_count": alerts, "cluster_count": clusters, "alert_chunks": chunks,
            "cluster_chunks": 1, "model_versions": {"alert_scorer": "1", "cluster_scorer": "1"},
            "checksum": f"{seed:064x}", "latency_ms": 1600.0, "produced_at": produced,
        }  # fmt: skip
        out.append((topic, complete_key(date), codec.encode(SUBMISSION_COMPLETE, complete)))
    for kind, ids, matrix in (("alert", alert_ids, miner_alerts), ("cluster", cluster_ids, miner_clusters)):
        ensemble = weights @ matrix
        std = matrix.std(axis=0)
        mean = matrix.mean(axis=0)
        confidence = np.clip(1 - std / np.maximum(mean, 1e-9), 0, 1)
        agreement = (np.abs(matrix - mean) <= 0.1).mean(axis=0)
        ranks = _ranks(ids, ensemble)
        top = np.argsort(-weights)[:3]
        name = ENSEMBLE_ALERT_SCORE if kind == "alert" else ENSEMBLE_CLUSTER_SCORE
        topic = topics.ensemble_alerts if kind == "alert" else topics.ensemble_clusters
        for i, entity_id in enumerate(ids):
            record = {
                "network": network, "processing_date": date, f"{kind}_id": entity_id,
                "ensemble_score": float(ensemble[i]), "confidence": float(confidence[i]),
                "miner_count": len(miners), "miner_agreement": float(agreement[i]), "score_std": float(std[i]),
                "rank": int(ranks[i]),
                "top_contributors": [
                    {"miner_id": miners[t], "weight": float(weights[t]), "score": float(matrix[t, i])} for t in top
                ],
                "version": version,
            }  # fmt: skip
            out.append((topic, f"{date.isoformat()}:{entity_id}", codec.encode(name, record)))
    stages = ["immediate", "ground_truth"] if ground_truth else ["immediate"]
    for stage in stages:
        for m, miner_id in enumerate([*miners, "ensemble"]):
            immediate = 0.2 + 0.25 * float(rng.random())
            gt = 0.3 + 0.2 * float(rng.random()) if stage == "ground_truth" else None
            result = {
                "network": network, "processing_date": date, "miner_id": miner_id, "stage": stage,
                "integrity_score": 0.2, "behaviour_score": immediate - 0.2, "ground_truth_score": gt,
                "immediate_score": immediate, "final_score": None if gt is None else immediate + gt,
                "weight": float(weights[m]) if m < len(miners) else 1.0, "passed_integrity": True,
                "reasons": [], "metrics": {"auc_roc": 0.9, "brier": 0.1, "calibration_error": 0.05} if gt else {},
                "version": version,
            }  # fmt: skip
            out.append(
                (
                    topics.validator_results,
                    f"{date.isoformat()}:{miner_id}",
                    codec.encode(VALIDATION_RESULT, result),
                )
            )
    batch = {
        "network": network, "processing_date": date, "window_days": 7, "batch_id": batch_id, "version": version,
        "aggregation_method": "weighted_mean", "trigger": "all_complete" if version == 1 else "replay",
        "alert_count": alerts, "cluster_count": clusters, "expected_miners": list(miners),
        "miners": [
            {"miner_id": m, "weight": float(w), "immediate_score": 0.4, "completed": True}
            for m, w in zip(miners, weights, strict=True)
        ],
        "aggregated_at": produced + dt.timedelta(minutes=5),
    }  # fmt: skip
    out.append((topics.ensemble_batches, f"{network}:{date.isoformat()}", codec.encode(ENSEMBLE_BATCH, batch)))
    return out


Published = tuple[str, str, bytes, list[tuple[str, bytes]]]  # topic, key, value, headers


def as_published(records: Sequence[Record], signer: Signer, topics: TopicNames) -> list[Published]:
    """``records`` as the sink reads them: validator outputs signed, miner records forwarded by the bridge.

    ``signer`` is the validator's; a miner record becomes the inbox record its bridge would write
    (same key and bytes, signed over the position it had on its miner topic, offset = its index).
    """
    purposes = output_purposes(topics)
    out: list[Published] = []
    for index, (topic, key, value) in enumerate(records):
        if topic in purposes:
            out.append((topic, key, value, signer.headers(purposes[topic], key, value)))
        elif topics.miner_id_of(topic) is not None:
            position = f"{topic}:0:{index}"
            out.append((topics.validator_inbox, key, value, signer.headers(INBOX, key, value, batch_id=position)))
        else:
            out.append((topic, key, value, []))
    return out


def as_messages(published: Sequence[Published]) -> list[Message]:
    """``published`` as consumed messages (partition 0, offsets in order), e.g. for ``WarehouseSink.write``."""
    now = int(time.time() * 1000)
    return [Message(t, 0, i, k.encode(), v, now, tuple(h)) for i, (t, k, v, h) in enumerate(published)]
