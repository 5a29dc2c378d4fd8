"""The root of every error riskstream raises on purpose.

    RiskstreamError
    ├── ConfigError          bad settings or command-line input
    ├── CodecError           bytes that are not a record we know (bad framing, unknown id, bad body)
    ├── SchemaRegistryError  the registry cannot answer (unknown subject, unreachable server)
    ├── ObjectStoreError     the object store cannot answer (missing key, unreachable endpoint)
    ├── EventError           an S3 event notification we cannot parse
    ├── KafkaError           the broker refused or lost a produce/consume/admin call
    └── StackError           the local stack cannot start, stop or be found

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


class KafkaError(RiskstreamError):
    """A produce, consume or admin call failed at the broker."""


class StackError(RiskstreamError):
    """The local stack (broker, data dirs) cannot be started, stopped or found."""
