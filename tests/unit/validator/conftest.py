"""Broker-free fixtures: dict tables, a file store, a producer that records what it sends."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from streams.codec import AvroCodec
from streams.objectstore import FileObjectStore
from streams.schema_registry import FileSchemaRegistry
from streams.settings import StackSettings
from validator.rounds import Rounds
from validator.settings import ValidatorSettings
from validator.tables import ValidatorTables

DATE = dt.date(2026, 1, 2)
PANEL = ["constant", "copycat", "honest-1", "honest-2", "honest-3", "random"]


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, bytes | None, Any]] = []
        self.flushed: list[tuple[str, Any, bytes | None, Any]] = []

    def send(self, topic: str, key: Any, value: bytes | None, headers: Any = None) -> None:
        self.sent.append((topic, key, value, headers))

    def flush(self, timeout: float = 60.0) -> None:
        self.flushed = list(self.sent)

    def on(self, topic: str) -> list[tuple[str, Any, bytes | None, Any]]:
        return [s for s in self.sent if s[0] == topic]


@pytest.fixture
def codec() -> AvroCodec:
    return AvroCodec(FileSchemaRegistry.default())


@pytest.fixture
def store(tmp_path: Path) -> FileObjectStore:
    return FileObjectStore(tmp_path / "store")


def make_settings(tmp_path: Path, **overrides: Any) -> ValidatorSettings:
    stack = StackSettings(_env_file=None, home=tmp_path / "home", object_store_url=f"file://{tmp_path / 'store'}")
    values: dict[str, Any] = {"expected_miners": PANEL, "deadline_s": 30.0, **overrides}
    return ValidatorSettings(stack=stack, **values)


@pytest.fixture
def make_rounds(tmp_path: Path, codec: AvroCodec, store: FileObjectStore) -> Any:
    def build(**overrides: Any) -> tuple[Rounds, RecordingProducer]:
        producer = RecordingProducer()
        rounds = Rounds(ValidatorTables.in_memory(), make_settings(tmp_path, **overrides), codec, store, producer)
        return rounds, producer

    return build
