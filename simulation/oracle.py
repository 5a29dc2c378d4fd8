"""Ensemble records built field by field, as a test oracle for the validator's column-wise encoder.

Slow and obvious on purpose: one dict per entity, encoded by the record codec, so a test can
compare its bytes with what the fast encoder writes.

    records = ensemble_records(scores, miners, ids, "alert_id", "ethereum", date, version=1)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt


class EntityScores(Protocol):
    """What the oracle reads of the validator's per-entity ensemble scores (aligned with the ids)."""

    @property
    def score(self) -> npt.NDArray[np.float64]: ...
    @property
    def confidence(self) -> npt.NDArray[np.float64]: ...
    @property
    def miner_count(self) -> npt.NDArray[np.int64]: ...
    @property
    def agreement(self) -> npt.NDArray[np.float64]: ...
    @property
    def std(self) -> npt.NDArray[np.float64]: ...
    @property
    def rank(self) -> npt.NDArray[np.int64]: ...
    @property
    def contributors(self) -> list[list[tuple[int, float, float]]]: ...


def ensemble_records(
    scores: EntityScores,
    miners: Sequence[str],
    ids: Sequence[str],
    id_field: str,
    network: str,
    date: dt.date,
    version: int,
) -> list[tuple[str, dict[str, Any]]]:
    """(key, record) of every entity's ensemble score record, in the order of ``ids``."""
    records = []
    score, confidence, count = scores.score.tolist(), scores.confidence.tolist(), scores.miner_count.tolist()
    agreement, std, rank = scores.agreement.tolist(), scores.std.tolist(), scores.rank.tolist()
    contributors = scores.contributors
    for col, entity_id in enumerate(ids):
        records.append(
            (
                f"{date.isoformat()}:{entity_id}",
                {
                    "network": network,
                    "processing_date": date,
                    id_field: str(entity_id),
                    "ensemble_score": score[col],
                    "confidence": confidence[col],
                    "miner_count": count[col],
                    "miner_agreement": agreement[col],
                    "score_std": std[col],
                    "rank": rank[col],
                    "top_contributors": [
                        {"miner_id": miners[row], "weight": w, "score": s} for row, w, s in contributors[col]
                    ],
                    "version": version,
                },
            )
        )
    return records
