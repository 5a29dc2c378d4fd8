"""Closing a large date from an agent leaves the event loop free (heartbeats, other agents, timers)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from validator_fakes import DATE

from simulation import adversarial_panel, make_batch, submission_records, write_batch
from streams.codec import AvroCodec
from streams.objectstore import FileObjectStore
from validator.bridge import InboxRecord

T0 = dt.datetime(2026, 1, 2, 6, 0, tzinfo=dt.UTC)
HONEST = ["honest-1", "honest-2", "honest-3"]


class SlowFlushProducer:
    """A producer whose flush blocks like a real one waiting on the broker."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.sent = 0

    def send(self, topic: str, key: Any, value: bytes | None, headers: Any = None) -> None:
        self.sent += 1

    def flush(self, timeout: float = 60.0) -> None:
        time.sleep(self.seconds)


async def _lag_while(work: Any) -> tuple[Any, float, float]:
    """Run ``work`` while a ticker measures how late the loop wakes it; (result, seconds, worst lag)."""
    lags: list[float] = []
    stop = asyncio.Event()

    async def tick() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - started - 0.01)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    result = await work
    took = time.perf_counter() - started
    stop.set()
    await ticker
    return result, took, max(lags)


async def test_a_large_date_closes_off_the_event_loop(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore
) -> None:
    batch = make_batch(8_000, DATE, seed=11, published_at=T0)
    key = write_batch(store, batch)
    rounds, _ = make_rounds(expected_miners=HONEST)
    rounds.producer = SlowFlushProducer(0.2)
    panel = adversarial_panel(batch, seed=3)
    records = [
        InboxRecord(k.encode(), v, f"scores.{miner}", 0, offset)
        for miner in HONEST
        for offset, (k, v) in enumerate(submission_records(codec, batch, miner, *panel[miner], T0, chunk_size=1000))
    ]
    assert await rounds.open_batch_async(store.object_created_event(key, 1, "e", T0), "sot.batches:0:0")
    await rounds.ingest_async(records)
    done, took, worst = await _lag_while(rounds.check_async(0))
    assert done == [("2026-01-02|ethereum", 1, "all_complete")]
    print(f"closing 8000 alerts x 3 miners took {took:.2f}s; worst event-loop lag {worst * 1000:.0f} ms")
    assert took > 0.4  # two blocking flushes at least: long enough to stall the loop if run on it
    assert worst < took / 4, f"the event loop stalled {worst:.2f}s of a {took:.2f}s close"
