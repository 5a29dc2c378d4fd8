"""The Scorer plug-in protocol: what a model does to take part; the agent does everything else.

A scorer fits on labelled history, scores one verified batch and saves/loads itself with a
model version string. The agent owns Kafka, chunking, ranking (when the scorer gives none),
the checksum, signing and registration. A third-party scorer is a factory
``(ScorerContext) -> Scorer`` named ``package.module:factory`` or registered in the entry-point
group ``riskstream.scorers``:

    def factory(context: ScorerContext) -> Scorer:
        return MyScorer(seed=context.seed)
    # riskstream miner run --miner-id me --scorer mypackage.scorer:factory
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from miner.scoring import BatchScores
from streams.batch import Batch, Labels

if TYPE_CHECKING:
    from miner.settings import MinerSettings
    from streams.batch import Manifest

__all__ = ["Batch", "BatchScores", "Labels", "LabelledDay", "Scorer", "ScorerContext", "TrainingDay"]


@dataclass(frozen=True, slots=True)
class LabelledDay:
    """One past date: its verified batch and its published ground truth."""

    date: dt.date
    batch: Batch
    labels: Labels


@dataclass(frozen=True, slots=True)
class TrainingDay:
    """A labelled date of the training window, loaded on demand (hold features, not whole batches)."""

    date: dt.date
    load: Callable[[], LabelledDay]


class PeerSource(Protocol):
    """Reads another miner's complete submission for one batch (only the copycat needs one)."""

    def read(self, miner_id: str, manifest: Manifest, timeout_s: float) -> BatchScores: ...


@dataclass(frozen=True, slots=True)
class ScorerContext:
    """What a factory is given: who the miner is and where its models live.

    ``settings`` is the whole miner configuration (built-in scorers read their knobs there);
    ``stopping`` is set when the miner stops, for a scorer that waits inside ``score``.
    """

    miner_id: str
    network: str
    model_dir: Path
    seed: int
    threads: int
    settings: MinerSettings
    peers: PeerSource | None = None
    stopping: threading.Event = field(default_factory=threading.Event)


@runtime_checkable
class Scorer(Protocol):
    """A model that scores batches; ``fit`` and ``load`` return new scorers and leave ``self`` as it is.

    scorer = factory(context).load(context.model_dir)     # or .fit(days) then .save(dir)
    scores = scorer.score(batch)                          # ids, scores in [0, 1], optional ranks, clusters
    """

    @property
    def name(self) -> str:
        """Short name sent in the registration (e.g. ``xgboost-a``)."""
        ...

    @property
    def version(self) -> str:
        """Version of the fitted or loaded model ("" before either); sent as the chunks' model_version."""
        ...

    @property
    def trainable(self) -> bool:
        """False for scorers that need no labels (they ignore ``fit``, ``save`` and ``load``)."""
        ...

    def fit(self, history: Sequence[TrainingDay]) -> Scorer:
        """A new scorer fitted on every given day (oldest first)."""
        ...

    def score(self, batch: Batch) -> BatchScores:
        """Scores of every alert (and cluster) of one verified batch; may block, runs off the event loop."""
        ...

    def save(self, directory: Path) -> str:
        """Write the fitted model under ``directory``; returns its version."""
        ...

    def load(self, directory: Path) -> Scorer:
        """The newest model saved under ``directory`` (``ModelNotFoundError`` when there is none)."""
        ...
