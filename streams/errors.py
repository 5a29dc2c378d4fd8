"""The root of every error riskstream raises on purpose.

    RiskstreamError
    ├── ConfigError          bad settings or command-line input
    ├── CodecError           bytes that are not a record we know (bad framing, unknown id, bad body)
    ├── SchemaRegistryError  the registry cannot answer (unknown subject, unreachable server)
    ├── ObjectStoreError     the object store cannot answer (missing key, unreachable endpoint)
    ├── EventError           an S3 event notification we cannot parse
    ├── BatchRejected        a published batch or labels folder fails verification (``key``, ``reason``)
    │   ├── MissingFileError   a file the manifest lists is absent, or the manifest itself
    │   ├── ChecksumError      a file's sha256 or row count differs from the manifest
    │   └── BatchSchemaError   not a manifest, not parquet, or columns not in the contract's types
    ├── KafkaError           the broker refused or lost a produce/consume/admin call
    ├── WarehouseError       ClickHouse cannot be reached or refused a statement
    ├── StackError           the local stack cannot start, stop or be found
    └── SubmissionError      scores that break the submission contract (NaN, ids and scores misaligned)

Each service package subclasses these in its own ``errors.py``.
"""

from __future__ import annotations


class RiskstreamError(Exception):
    """Root of riskstream's errors: catch this at a process edge to print one clear line."""


class ConfigError(RiskstreamError):
    """Settings or command-line input that cannot work."""


class CodecError(RiskstreamError):
    """Bytes that do not decode to a known record, or a record that does not fit its schema."""


class SchemaRegistryError(RiskstreamError):
    """The schema registry does not know a subject/id or cannot be reached."""


class ObjectStoreError(RiskstreamError):
    """An object is missing or the object store cannot be reached."""


class EventError(RiskstreamError):
    """An object-created event notification that does not have the AWS S3 shape."""


class BatchRejected(RiskstreamError):
    """A published batch (or labels) that fails verification; ``key`` names the object, ``reason`` the problem."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class MissingFileError(BatchRejected):
    """The manifest, or a file it lists, is not in the object store (or not listed)."""


class ChecksumError(BatchRejected):
    """A file's sha256 or row count differs from what the manifest says."""


class BatchSchemaError(BatchRejected):
    """Not a manifest of the expected kind, not parquet, or columns missing / not castable to the contract."""


class KafkaError(RiskstreamError):
    """A produce, consume or admin call failed at the broker."""


class WarehouseError(RiskstreamError):
    """ClickHouse cannot be reached or refused a statement."""


class StackError(RiskstreamError):
    """The local stack (broker, data dirs) cannot be started, stopped or found."""


class SubmissionError(RiskstreamError):
    """Scores that cannot form a submission: misaligned ids and scores, NaN or infinite values."""
