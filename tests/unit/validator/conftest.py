"""Broker-free fixtures: dict tables, a file store, a producer that records what it sends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from validator_fakes import RecordingProducer, make_settings

from streams.codec import AvroCodec
from streams.objectstore import FileObjectStore
from streams.schema_registry import FileSchemaRegistry
from validator.rounds import Rounds
from validator.tables import ValidatorTables


@pytest.fixture
def codec() -> AvroCodec:
    return AvroCodec(FileSchemaRegistry.default())


@pytest.fixture
def store(tmp_path: Path) -> FileObjectStore:
    return FileObjectStore(tmp_path / "store")


@pytest.fixture
def make_rounds(tmp_path: Path, codec: AvroCodec, store: FileObjectStore) -> Any:
    def build(**overrides: Any) -> tuple[Rounds, RecordingProducer]:
        producer = RecordingProducer()
        rounds = Rounds(ValidatorTables.in_memory(), make_settings(tmp_path, **overrides), codec, store, producer)
        return rounds, producer

    return build
