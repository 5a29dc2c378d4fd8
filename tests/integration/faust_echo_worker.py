"""A Faust worker for the foundation test: decodes Avro records with the codec, writes them out.

Run as ``python faust_echo_worker.py BOOTSTRAP TOPIC OUT_FILE DATADIR``.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import faust
import orjson

from streams.codec import AvroCodec
from streams.faust_codec import FAUST_CODEC_NAME, register_faust_codec
from streams.schema_registry import FileSchemaRegistry


def main() -> None:
    bootstrap, topic_name, out, datadir = sys.argv[1:5]
    register_faust_codec(AvroCodec(FileSchemaRegistry.default()))
    app = faust.App(
        f"echo-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        broker_session_timeout=6,
        topic_partitions=1,
        datadir=datadir,
    )
    topic = app.topic(topic_name, value_serializer=FAUST_CODEC_NAME)

    @app.agent(topic)
    async def echo(stream: Any) -> None:
        async for value in stream:
            with Path(out).open("ab") as sink:
                sink.write(orjson.dumps(value, default=str) + b"\n")

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
