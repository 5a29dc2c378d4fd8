"""Retraining on events: labelled dates on sot.labels retrain a running miner in the background and swap its model.

Batches announced before, during and after the retraining are all scored, none waits for the
training, and every submission carries exactly one model version.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import pytest
from slow_fit_scorer import FIT_SECONDS
from test_miner_stack import NETWORK, SIZE, _read_submission

from miner.app import run_miner, train_miner
from miner.retraining import RetrainState
from miner.settings import MinerSettings
from streams.kafka import BatchProducer
from streams.objectstore import open_store
from streams.settings import StackSettings

sot_generator = pytest.importorskip("sot.generator")
sot_publisher = pytest.importorskip("sot.publisher")

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIRST = dt.date(2026, 3, 1)


def _versions(stack: StackSettings, miner_id: str, date: dt.date) -> tuple[set[str], float]:
    found = _read_submission(stack, miner_id, date, timeout=120)
    versions = {r["model_version"] for r in found["alerts"].values()} | {
        r["model_version"] for r in found["clusters"].values()
    }
    versions |= set(found["complete"]["model_versions"].values())
    return versions, found["complete"]["latency_ms"] / 1000.0


async def _wait(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s")
        await asyncio.sleep(0.2)


async def test_new_labels_retrain_and_swap_under_a_running_miner(stack_settings: StackSettings, tmp_path: Path) -> None:
    store = open_store(stack_settings.object_store_url)
    producer = BatchProducer(stack_settings.bootstrap_servers)
    topics = stack_settings.topics
    days = [FIRST + dt.timedelta(days=i) for i in range(9)]
    batches = {d: sot_generator.generate_batch(NETWORK, d, **SIZE) for d in days}
    for d in days[:4]:  # the first training: 4 labelled dates
        sot_publisher.write_batch(store, batches[d])
        sot_publisher.publish_labels(store, producer, topics, batches[d])
    settings = MinerSettings(
        stack=stack_settings, miner_id="learner", scorer="slow_fit_scorer:factory", model_dir=tmp_path / "m",
        retrain_every_days=2, train_window_days=5, retrain_nice=5,
    )  # fmt: skip
    first = train_miner(settings, days[0], days[3], window_days=7, today=days[-1] + dt.timedelta(days=30))
    assert first.promoted and first.scorer is not None
    v1 = first.scorer.version
    assert RetrainState.load(settings.models_path).trained == set(days[:4])

    running = asyncio.create_task(run_miner(settings, max_batches=3))
    # a batch before any new label: the first model
    sot_publisher.publish_batch(store, producer, topics, batches[days[6]])
    before, _ = await asyncio.to_thread(_versions, stack_settings, "learner", days[6])
    assert before == {v1}

    # two new labelled dates: a retraining starts in the background (its fit takes FIT_SECONDS)
    started = time.monotonic()
    for d in days[4:6]:
        sot_publisher.write_batch(store, batches[d])
        sot_publisher.publish_labels(store, producer, topics, batches[d])
    await _wait(lambda: len(RetrainState.load(settings.models_path).seen) == 6, 60)
    sot_publisher.publish_batch(store, producer, topics, batches[days[7]])
    during, latency = await asyncio.to_thread(_versions, stack_settings, "learner", days[7])
    # scored while the candidate was being fitted (twice: held out, then on all dates), not after it
    assert len(during) == 1 and latency < 2 * FIT_SECONDS, (during, latency)

    # once the candidate is promoted the next batch is scored with it
    await _wait(lambda: any(p.name.startswith("fit-5d") for p in settings.models_path.glob("fit-*.json")), 120)
    await _wait(lambda: RetrainState.load(settings.models_path).trained == set(days[1:6]), 30)
    sot_publisher.publish_batch(store, producer, topics, batches[days[8]])
    after, _ = await asyncio.to_thread(_versions, stack_settings, "learner", days[8])
    stats = await asyncio.wait_for(running, 120)
    assert stats.submitted == 3 and stats.failed == 0
    [retrained] = stats.retrainings
    assert retrained["promoted"] and retrained["validation_dates"] == [days[5].isoformat()]
    assert retrained["train_dates"] == [d.isoformat() for d in days[1:5]]  # the last 5 labelled dates
    assert after == {retrained["version"]} and retrained["version"] != v1 and len(after) == 1
    assert time.monotonic() - started < 300
