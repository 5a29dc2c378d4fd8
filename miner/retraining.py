"""Retraining on events: labelled dates announced on ``sot.labels`` trigger a background retraining.

After ``MINER_RETRAIN_EVERY_DAYS`` labelled dates the current model was not trained on, the
scorer is refitted on the last ``MINER_TRAIN_WINDOW_DAYS`` labelled dates in a child process
(niced, so scoring keeps its CPU): fit on the older dates, compare with the current model on the
newest, refit on all and save when promoted (``training_run.train_validated``). The agent then
loads the saved model and swaps it in between batches; a candidate worse than the current model
by more than ``MINER_RETRAIN_MAX_AUC_PR_DROP`` (held-out AUC-PR) is logged and dropped.

    retrainer = Retrainer(settings, agent)
    await retrainer.run(labels_consumer)          # next to agent.run(batches_consumer)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import multiprocessing
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from miner.agent import MinerAgent
from miner.errors import MinerError
from miner.settings import MinerSettings
from streams.errors import EventError, RiskstreamError
from streams.kafka import Message
from streams.objectstore import ObjectStore, parse_object_created

log = logging.getLogger("miner.retraining")
STATE_FILE = "retraining.json"


class LabelConsumer(Protocol):
    def batches(self) -> AsyncIterator[list[Message]]: ...

    async def commit(self) -> None: ...


def labelled_date_of(object_key: str, network: str) -> dt.date | None:
    """The date of ``labels/{network}/{date}/{window}/manifest.json``, else None."""
    parts = object_key.split("/")
    if len(parts) != 5 or parts[0] != "labels" or parts[1] != network or parts[4] != "manifest.json":
        return None
    try:
        return dt.date.fromisoformat(parts[2])
    except ValueError:
        return None


@dataclass(slots=True)
class RetrainState:
    """Labelled dates seen on ``sot.labels`` and those the current model was trained on (kept on disk)."""

    seen: set[dt.date] = field(default_factory=set)
    trained: set[dt.date] = field(default_factory=set)

    @classmethod
    def load(cls, directory: Path) -> RetrainState:
        try:
            raw = json.loads((directory / STATE_FILE).read_text())
            return cls(
                {dt.date.fromisoformat(d) for d in raw.get("seen", [])},
                {dt.date.fromisoformat(d) for d in raw.get("trained", [])},
            )
        except (OSError, ValueError, TypeError, AttributeError):
            return cls()

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        body = {
            "seen": sorted(d.isoformat() for d in self.seen),
            "trained": sorted(d.isoformat() for d in self.trained),
        }
        tmp = directory / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(body, indent=1))
        os.replace(tmp, directory / STATE_FILE)

    @property
    def new(self) -> list[dt.date]:
        return sorted(self.seen - self.trained)


def record_training(directory: Path, dates: list[str]) -> None:
    """After a training: its dates are no longer new."""
    state = RetrainState.load(directory)
    days = {dt.date.fromisoformat(d) for d in dates}
    state.trained = days
    state.seen |= days
    state.save(directory)


def _nice(level: int) -> None:
    with contextlib.suppress(OSError):
        os.nice(level)


def retrain_job(settings: MinerSettings, start: dt.date, end: dt.date) -> dict[str, Any]:
    """Runs in the child process: fit, validate, refit and save; returns the outcome as plain data."""
    from miner.app import train_miner  # the child builds its own clients

    outcome = train_miner(settings, start, end, window_days=settings.window_days)
    return {
        "promoted": outcome.promoted,
        "reason": outcome.reason,
        "version": outcome.scorer.version if outcome.scorer else None,
        "candidate": outcome.candidate.as_dict(),
        "current": outcome.current.as_dict() if outcome.current else None,
        "train_dates": outcome.train_dates,
        "validation_dates": outcome.validation_dates,
    }


Job = Callable[[MinerSettings, dt.date, dt.date], dict[str, Any]]


def _child(connection: Connection, job: Job, nice: int, settings: MinerSettings, start: dt.date, end: dt.date) -> None:
    _nice(nice)
    try:
        connection.send(("ok", job(settings, start, end)))
    except Exception as exc:  # every failure goes back to the parent as one line
        connection.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        connection.close()


async def run_in_child(job: Job, settings: MinerSettings, start: dt.date, end: dt.date) -> dict[str, Any]:
    """``job`` in a spawned, niced process; cancelling terminates it. ``MinerError`` if it failed."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe(duplex=False)
    process = context.Process(
        target=_child, args=(theirs, job, settings.retrain_nice, settings, start, end), daemon=True, name="retraining"
    )
    process.start()
    theirs.close()
    try:
        status, payload = await asyncio.to_thread(_receive, ours)
    finally:
        if process.is_alive():
            process.terminate()
        await asyncio.to_thread(process.join, 10)
        ours.close()
    if status != "ok":
        raise MinerError(str(payload))
    result: dict[str, Any] = payload
    return result


def _receive(connection: Connection) -> tuple[str, Any]:
    try:
        status, payload = connection.recv()
    except EOFError:
        return "error", "the retraining process ended without an answer"
    return str(status), payload


class Retrainer:
    """Listens to labelled dates and retrains the agent's scorer in a child process, then swaps it in."""

    def __init__(
        self, settings: MinerSettings, agent: MinerAgent, store: ObjectStore, *, job: Job = retrain_job
    ) -> None:
        self.settings = settings
        self.agent = agent
        self.store = store
        self.job = job
        self.state = RetrainState.load(settings.models_path)
        self.running: asyncio.Task[dict[str, Any] | None] | None = None
        self.results: list[dict[str, Any]] = []

    def note(self, date: dt.date) -> None:
        if date not in self.state.seen:
            self.state.seen.add(date)
            self.state.save(self.settings.models_path)

    def due(self) -> bool:
        return (
            self.settings.retrain
            and self.agent.scorer.trainable
            and (self.running is None or self.running.done())
            and len(self.state.new) >= self.settings.retrain_every_days
        )

    def window(self) -> tuple[dt.date, dt.date]:
        newest = max(self.state.seen)
        return newest - dt.timedelta(days=self.settings.train_window_days - 1), newest

    async def retrain(self) -> dict[str, Any] | None:
        """One retraining in the child process; swaps the agent's scorer when the candidate is promoted."""
        start, end = self.window()
        log.info("miner %s retrains on %s..%s (%d new labelled dates)", self.settings.miner_id, start, end,
                 len(self.state.new))  # fmt: skip
        try:
            result = await run_in_child(self.job, self.settings, start, end)
        except (RiskstreamError, OSError) as exc:
            log.error("miner %s: retraining failed: %s: %s", self.settings.miner_id, type(exc).__name__, exc)
            return None
        self.results.append(result)
        if not result["promoted"]:
            log.warning("miner %s: candidate not promoted: %s", self.settings.miner_id, result["reason"])
            # the dates stay "new": the next labelled date tries again with a fresher window
            return result
        loaded = await asyncio.to_thread(self.agent.scorer.load, self.settings.models_path)
        self.agent.swap(loaded)
        seen = self.state.seen
        self.state = RetrainState.load(self.settings.models_path)  # the child recorded what it trained on
        self.state.seen |= seen
        self.state.save(self.settings.models_path)
        log.info("miner %s promoted %s (held-out AUC-PR %s vs %s)", self.settings.miner_id, loaded.version,
                 result["candidate"]["auc_pr"], (result["current"] or {}).get("auc_pr"))  # fmt: skip
        return result

    def _dates_of(self, message: Message) -> list[dt.date]:
        try:
            created = parse_object_created(message.value)
        except EventError:
            return []
        found = []
        for event in created:
            date = labelled_date_of(self.store.key_of(event), self.settings.network)
            if date is not None:
                found.append(date)
        return found

    async def run(self, consumer: LabelConsumer, stop: asyncio.Event) -> None:
        """Note every labelled date announced; start a retraining whenever one is due."""
        batches = consumer.batches()
        try:
            while not stop.is_set():
                next_batch = asyncio.ensure_future(anext(batches))
                stopping = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({next_batch, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if next_batch not in done:
                    next_batch.cancel()
                    await asyncio.gather(next_batch, return_exceptions=True)
                    break
                stopping.cancel()
                await asyncio.gather(stopping, return_exceptions=True)
                for message in next_batch.result():
                    for date in self._dates_of(message):
                        self.note(date)
                await consumer.commit()
                if self.due():
                    self.running = asyncio.create_task(self.retrain())
        finally:
            await batches.aclose()  # type: ignore[attr-defined]  # an async generator
            if self.running is not None and not self.running.done():
                self.running.cancel()
                await asyncio.gather(self.running, return_exceptions=True)


__all__ = ["MinerError", "RetrainState", "Retrainer", "labelled_date_of", "record_training", "retrain_job"]
