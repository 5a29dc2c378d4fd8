"""Errors the miner raises on purpose.

RiskstreamError (streams.errors)
└── MinerError
    ├── BatchError             a published batch the miner cannot score (reported as an event)
    │   ├── MissingFileError   a file the manifest lists (or the miner needs) is absent
    │   ├── ChecksumError      a file's sha256 or row count differs from the manifest
    │   └── BatchSchemaError   a file is not parquet or lacks a column of the contract
    ├── ModelNotFoundError     no trained model of a type for a network
    ├── TrainingError          no usable labelled dates, one class only, ...
    └── PeerSubmissionError    the miner a copycat follows has no submission for the date
"""

from __future__ import annotations

from streams.errors import RiskstreamError


class MinerError(RiskstreamError):
    """Root of the miner's errors."""


class BatchError(MinerError):
    """A published batch that cannot be scored; the agent reports it and serves the next one."""


class MissingFileError(BatchError):
    """A file of the batch is missing from the manifest or the object store."""


class ChecksumError(BatchError):
    """A downloaded file does not match the manifest's sha256 or row count."""


class BatchSchemaError(BatchError):
    """A file is not readable parquet or lacks a column the contract promises."""


class ModelNotFoundError(MinerError):
    """No trained model of a type exists for a network in the model directory."""


class TrainingError(MinerError):
    """Training cannot run: no labelled dates, one class only, bad window."""


class PeerSubmissionError(BatchError):
    """The miner a copycat follows sent no complete submission for the date in time."""
