"""Errors the SOT raises on purpose.

RiskstreamError
└── SotError
    ├── SotInputError       bad command-line or API input (network, date, sizes)
    ├── LabelsNotDueError   labels of a date asked for before date + tau
    ├── BatchNotFoundError  labels asked for a batch that was never published
    ├── BatchExistsError    a different batch (or labels) already published there; --replace to replace
    ├── CheckFailedError    an owner's files do not meet the contract (the report lists every problem)
    └── PublishError        an upload or event emission failed
"""

from __future__ import annotations

from streams.errors import ConfigError, RiskstreamError


class SotError(RiskstreamError):
    """Root of the SOT's errors."""


class SotInputError(SotError, ConfigError):
    """Input that cannot describe a batch: unknown network, bad date, impossible sizes."""


class LabelsNotDueError(SotError):
    """Ground truth of a date requested before it is due (date + tau after today)."""


class BatchNotFoundError(SotError):
    """No published batch where one is required."""


class BatchExistsError(SotError):
    """Another batch (or other labels) is published for the same (network, date, window)."""


class CheckFailedError(SotError):
    """An owner's files fail the contract check; nothing was uploaded."""


class PublishError(SotError):
    """Uploading a file or emitting its event failed."""
