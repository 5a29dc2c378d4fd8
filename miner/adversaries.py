"""Adversarial scorers for tests and the demo: behaviours the validator must catch. Not for real mining.

random and constant scores (gaming), a copycat (re-emits another miner's submission with noise),
partial (scores only some alerts) and late (holds its scores). Each is a ``Scorer``; the
``--profile`` names map to them in ``miner.plugins``.

    scorer = CopycatScorer(context)          # context.settings.copy_of names the miner it copies
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Self

import numpy as np
import numpy.typing as npt

from miner.errors import MinerError, PeerSubmissionError, ScoringStopped
from miner.scorer import Scorer, ScorerContext, TrainingDay
from miner.scoring import BatchScores
from streams.batch import Batch


def rng_for(miner_id: str, date: dt.date, purpose: str) -> np.random.Generator:
    """A generator seeded by (miner id, date, purpose): the same batch gives the same numbers."""
    digest = hashlib.sha256(f"{miner_id}|{date.isoformat()}|{purpose}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def random_scores(miner_id: str, date: dt.date, count: int, purpose: str = "alerts") -> npt.NDArray[np.float64]:
    return rng_for(miner_id, date, purpose).random(count)


def partial_mask(miner_id: str, date: dt.date, count: int, fraction: float) -> npt.NDArray[np.bool_]:
    """Which entities a partial miner keeps: a seeded ``fraction`` of them."""
    keep = int(round(count * fraction))
    mask = np.zeros(count, dtype=bool)
    mask[rng_for(miner_id, date, "partial").permutation(count)[:keep]] = True
    return mask


def with_noise(miner_id: str, date: dt.date, scores: npt.NDArray[np.float64], noise: float) -> npt.NDArray[np.float64]:
    """A copycat's disguise: the copied scores plus seeded uniform noise, clipped to [0, 1]."""
    jitter = rng_for(miner_id, date, "noise").uniform(-noise, noise, scores.size)
    return np.clip(scores + jitter, 0.0, 1.0)


def _ids(batch: Batch) -> tuple[list[str], list[str]]:
    return (
        [str(i) for i in batch.alerts["alert_id"].to_pylist()],
        [str(i) for i in batch.clusters["cluster_id"].to_pylist()],
    )


class _Untrained:
    """Scorers that need no labels: fit, save and load change nothing."""

    trainable = False

    def fit(self, history: Sequence[TrainingDay]) -> Scorer:
        return self  # type: ignore[return-value]  # every subclass is a Scorer

    def save(self, directory: Path) -> str:
        return str(getattr(self, "version", ""))

    def load(self, directory: Path) -> Scorer:
        return self  # type: ignore[return-value]  # every subclass is a Scorer


@dataclass(frozen=True, slots=True)
class RandomScorer(_Untrained):
    """Seeded uniform noise per (miner, date): deterministic, useless."""

    context: ScorerContext
    name: str = "random"
    version: str = "random-1.0.0"

    def score(self, batch: Batch) -> BatchScores:
        alert_ids, cluster_ids = _ids(batch)
        miner_id, date = self.context.miner_id, batch.manifest.processing_date
        versions = {t: self.version for t in ("alert_scorer", "cluster_scorer")}
        return BatchScores(
            alert_ids,
            random_scores(miner_id, date, len(alert_ids), "alerts"),
            cluster_ids,
            random_scores(miner_id, date, len(cluster_ids), "clusters"),
            versions,
        )


@dataclass(frozen=True, slots=True)
class ConstantScorer(_Untrained):
    """The same score for everything (``MINER_CONSTANT_SCORE``)."""

    context: ScorerContext
    name: str = "constant"
    version: str = "constant-1.0.0"

    def score(self, batch: Batch) -> BatchScores:
        alert_ids, cluster_ids = _ids(batch)
        value = self.context.settings.constant_score
        versions = {t: self.version for t in ("alert_scorer", "cluster_scorer")}
        return BatchScores(
            alert_ids, np.full(len(alert_ids), value), cluster_ids, np.full(len(cluster_ids), value), versions
        )


@dataclass(frozen=True, slots=True)
class CopycatScorer(_Untrained):
    """Waits for ``copy_of``'s complete submission of the batch and re-emits it with seeded noise."""

    context: ScorerContext
    name: str = "copycat"
    version: str = "copycat-1.0.0"

    def __post_init__(self) -> None:
        if not self.context.settings.copy_of:
            msg = "a copycat miner needs copy_of (MINER_COPY_OF / --copy-of): the miner it copies"
            raise MinerError(msg)

    def score(self, batch: Batch) -> BatchScores:
        settings, peers = self.context.settings, self.context.peers
        if peers is None or not settings.copy_of:
            msg = "copycat has no peer reader"
            raise PeerSubmissionError(msg)
        copied = peers.read(settings.copy_of, batch.manifest, settings.copy_timeout_s)
        miner_id, date, noise = self.context.miner_id, batch.manifest.processing_date, settings.copy_noise
        return BatchScores(
            copied.alert_ids,
            with_noise(miner_id, date, copied.alert_scores, noise),
            copied.cluster_ids,
            with_noise(miner_id, date, copied.cluster_scores, noise),
            {t: f"copycat-of-{v}" for t, v in copied.model_versions.items()},
        )


@dataclass(frozen=True, slots=True)
class _Wrapping:
    """An honest ``inner`` scorer whose training and models are its own; subclasses alter what it hands over."""

    inner: Scorer
    context: ScorerContext

    @property
    def version(self) -> str:
        return self.inner.version

    @property
    def trainable(self) -> bool:
        return self.inner.trainable

    def fit(self, history: Sequence[TrainingDay]) -> Self:
        return replace(self, inner=self.inner.fit(history))

    def save(self, directory: Path) -> str:
        return self.inner.save(directory)

    def load(self, directory: Path) -> Self:
        return replace(self, inner=self.inner.load(directory))


@dataclass(frozen=True, slots=True)
class PartialScorer(_Wrapping):
    """An honest scorer that sends only a seeded ``partial_fraction`` of the alerts."""

    name: str = "partial"

    def score(self, batch: Batch) -> BatchScores:
        scores = self.inner.score(batch)
        date, fraction = batch.manifest.processing_date, self.context.settings.partial_fraction
        return scores.subset(partial_mask(self.context.miner_id, date, len(scores.alert_ids), fraction))


@dataclass(frozen=True, slots=True)
class LateScorer(_Wrapping):
    """An honest scorer that holds its scores for ``delay_s`` before handing them over."""

    name: str = "late"

    def score(self, batch: Batch) -> BatchScores:
        scores = self.inner.score(batch)
        if self.context.stopping.wait(self.context.settings.delay_s):
            msg = "stopped while holding a late submission"
            raise ScoringStopped(msg)
        return scores
