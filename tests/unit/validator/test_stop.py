"""A validator stop is bounded: work in worker threads gives up once the bridge stops, and a slow
stop leaves every thread's stack in the log."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import sys
import threading
import time
from unittest.mock import patch

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streams.errors import KafkaError
from streams.kafka import Message
from streams.signing import Signer
from streams.topics import TopicNames
from validator.app import arm_stop_tracebacks
from validator.bridge import FLUSH_SLICE_S, Gate, MarkerSender, run_bridge
from validator.identity import KeyBook

TOPICS = TopicNames("t.")


class Sent:
    def send(
        self, topic: str, key: bytes | str | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None: ...


class Undeliverable:
    """A producer whose broker never acknowledges: every flush waits its whole timeout."""

    def __init__(self) -> None:
        self.queued = 0

    def produce(self, topic: str, value: bytes, partition: int, headers: list[tuple[str, bytes]]) -> None:
        self.queued += 1

    def flush(self, timeout: float) -> int:
        time.sleep(timeout)
        return self.queued


def test_a_watermark_flush_gives_up_soon_after_the_bridge_stops() -> None:
    """The flush runs in a worker thread that a cancelled bridge cannot interrupt and the interpreter
    waits for at exit: a stopping bridge must end it within a slice, not after ``flush_s``."""
    markers = MarkerSender(Undeliverable, "t.validator.inbox", 4, flush_s=30.0)
    signer = Signer(Ed25519PrivateKey.generate(), "validator")
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(KafkaError, match="4 watermarks not delivered"):
        markers.send(signer, 1_000, stop)
    assert time.monotonic() - started < 0.3 + 2 * FLUSH_SLICE_S


def test_run_bridge_stops_a_watermark_flush_under_way_when_cancelled() -> None:
    sending = threading.Event()
    finished: list[float] = []

    class Stuck(MarkerSender):
        def send(self, signer: Signer, at_ms: int, stop: threading.Event | None = None) -> None:
            sending.set()
            try:
                super().send(signer, at_ms, stop)
            finally:
                finished.append(time.monotonic())

    class Idle:
        async def getmany(self) -> list[Message]:
            return []

        async def caught_up(self) -> bool:
            return True

        async def commit(self) -> None: ...

    class Consumer:
        def __init__(self, *args: object, **kwargs: object) -> None: ...

        async def __aenter__(self) -> Idle:
            return Idle()

        async def __aexit__(self, *exc: object) -> None: ...

    async def scenario() -> float:
        gate = Gate(KeyBook({}, {}), TOPICS, Signer(Ed25519PrivateKey.generate(), "validator"))
        markers = Stuck(Undeliverable, "t.validator.inbox", 4, flush_s=30.0)
        task = asyncio.ensure_future(run_bridge("x", "g", TOPICS, Sent(), gate, markers=markers))  # type: ignore[arg-type]
        await asyncio.to_thread(sending.wait, 5.0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return time.monotonic()

    with patch("validator.bridge.AsyncBatchConsumer", Consumer):
        cancelled = asyncio.run(scenario())  # asyncio.run waits for the worker thread too
    assert finished and finished[0] - cancelled < 2 * FLUSH_SLICE_S


def test_stop_tracebacks_are_armed_even_when_stderr_is_a_logging_proxy(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """mode replaces sys.stderr with a proxy whose fileno() raises: arming must not fail (a failure
    inside the SIGTERM handler left the worker running until it was killed)."""

    class Proxy:
        def fileno(self) -> int:
            raise NotImplementedError

    monkeypatch.setattr(sys, "stderr", Proxy())
    arm_stop_tracebacks(0.05)
    time.sleep(0.3)
    faulthandler.cancel_dump_traceback_later()
    err = capfd.readouterr().err
    assert "Thread 0x" in err or "Current thread" in err
