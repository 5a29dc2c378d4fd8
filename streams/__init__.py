"""Shared plumbing of riskstream: every service imports this package and nothing else of ours.

Read first: ``topics.py`` (every topic name), ``settings.py`` (where everything is),
``codec.py`` (Avro in the Confluent wire format), ``kafka.py`` (producer, consumer, offsets)
and ``objectstore.py`` (S3 / file store and S3 event notifications).
"""

from streams.codec import AvroCodec, Decoded
from streams.errors import RiskstreamError
from streams.schema_registry import FileSchemaRegistry, registry_from_url
from streams.settings import ServiceSettings, StackSettings
from streams.topics import TopicNames

__all__ = [
    "AvroCodec",
    "Decoded",
    "FileSchemaRegistry",
    "RiskstreamError",
    "ServiceSettings",
    "StackSettings",
    "TopicNames",
    "registry_from_url",
]
