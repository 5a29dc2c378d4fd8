"""Broker-free fakes shared by the validator unit tests: a recording producer, settings, constants."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from streams.settings import StackSettings
from validator.settings import ValidatorSettings

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


def make_settings(tmp_path: Path, **overrides: Any) -> ValidatorSettings:
    stack = StackSettings(_env_file=None, home=tmp_path / "home", object_store_url=f"file://{tmp_path / 'store'}")
    values: dict[str, Any] = {"expected_miners": PANEL, "deadline_s": 30.0, **overrides}
    return ValidatorSettings(stack=stack, **values)
