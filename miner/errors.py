"""Errors the miner raises on purpose.

RiskstreamError (streams.errors)
└── MinerError
    ├── BatchError             a published batch the miner cannot score (reported as an event)
    │   └── PeerSubmissionError  the miner a copycat follows has no submission for the date
    ├── ModelNotFoundError     no trained model of a type for a network
    ├── TrainingError          no usable labelled dates, one class only, ...
    ├── ScorerError            a scorer cannot be loaded or returned scores that break the contract
    └── ScoringStopped         the miner stopped while a scorer was still holding a batch

A batch that fails verification raises ``streams.errors.BatchRejected`` (``streams.batch.read_batch``);
the agent reports it like a ``BatchError``.
"""

from __future__ import annotations

from streams.errors import RiskstreamError


class MinerError(RiskstreamError):
    """Root of the miner's errors."""


class BatchError(MinerError):
    """A published batch that cannot be scored; the agent reports it and serves the next one."""


class ModelNotFoundError(MinerError):
    """No trained model of a type exists for a network in the model directory."""


class TrainingError(MinerError):
    """Training cannot run: no labelled dates, one class only, bad window."""


class PeerSubmissionError(BatchError):
    """The miner a copycat follows sent no complete submission for the date in time."""


class ScorerError(MinerError):
    """A scorer that cannot be found or built, or whose scores break the submission contract."""


class ScoringStopped(MinerError):
    """The miner stopped while a scorer held a batch: nothing is sent, the event is redone."""
