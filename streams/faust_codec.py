"""The Avro codec as a Faust codec, so Faust agents receive decoded records.

    register_faust_codec(AvroCodec(FileSchemaRegistry.default()))
    app.topic(name, value_serializer=FAUST_CODEC_NAME)   # events carry dicts

Decoded values are the record dict plus ``"__schema__"`` (the writer's full record name).
Agents that must dead-letter undecodable bytes read ``value_serializer="raw"`` and call the
codec themselves, since Faust drops values its codec cannot decode.
"""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from streams.codec import AvroCodec

FAUST_CODEC_NAME = "riskstream-avro"
SCHEMA_FIELD = "__schema__"


class FaustAvroCodec(codecs.Codec):
    def __init__(self, codec: AvroCodec, **kwargs: Any) -> None:
        self._codec = codec
        super().__init__(**kwargs)

    def _loads(self, s: bytes) -> Any:
        decoded = self._codec.decode(s)
        return {**decoded.record, SCHEMA_FIELD: decoded.name}

    def _dumps(self, obj: Any) -> bytes:
        record = dict(obj)
        name = record.pop(SCHEMA_FIELD)
        return self._codec.encode(name, record)


def register_faust_codec(codec: AvroCodec) -> None:
    codecs.register(FAUST_CODEC_NAME, FaustAvroCodec(codec))
