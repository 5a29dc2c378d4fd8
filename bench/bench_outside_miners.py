"""Outside miners: a plug-in scorer's overhead in the agent, and a batch scored while a retraining runs.

Both figures sit next to a baseline measured in the same run on the same batch:
    .venv/bin/python -m bench.bench_outside_miners
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from miner.agent import MinerAgent
from miner.app import scorer_context
from miner.plugins import make_scorer
from miner.profiles import get_profile
from miner.retraining import retrain_job, run_in_child
from miner.scorer import Scorer, ScorerContext
from miner.settings import MinerSettings
from miner.training import labelled_history
from miner.xgboost_scorer import XGBoostScorer
from streams.batch import MANIFEST, snapshot_key
from streams.codec import AvroCodec
from streams.objectstore import FileObjectStore
from streams.schema_registry import FileSchemaRegistry
from streams.settings import StackSettings
from streams.topics import TopicNames

NETWORK = "ethereum"
FIRST = dt.date(2026, 1, 1)
DAYS = 6
SIZE = {"alerts": 5_000, "addresses": 20_000, "flows": 200_000, "clusters": 150}


class _Nothing:
    def send(self, topic: str, key: Any, value: Any, headers: Any = None) -> None:
        return None

    def flush(self, timeout: float = 60.0) -> None:
        return None


def plugin_factory(context: ScorerContext) -> Scorer:
    """The built-in XGBoost scorer, loaded the way a third-party one is (``module:factory``)."""
    return XGBoostScorer(get_profile("honest-a"), network=context.network, seed=context.seed, threads=context.threads)


def _row(case: str, value: float, unit: str, baseline: float | None) -> dict[str, Any]:
    return {
        "component": "miner",
        "case": case,
        "value": round(value, 3),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 3),
        "ratio": None if not baseline else round(value / baseline, 2),
    }


def _build_s(agents: list[MinerAgent], key: str, rounds: int = 5) -> list[float]:
    """Median build time of each agent: one warm-up build each, then ``rounds`` builds taken in turn
    (A, B, A, B, ...), so neither pays for cold caches or a load spike alone."""
    times: list[list[float]] = [[] for _ in agents]
    for agent in agents:
        agent.build(key)
    for _ in range(rounds):
        for i, agent in enumerate(agents):
            started = time.perf_counter()
            agent.build(key)
            times[i].append(time.perf_counter() - started)
    return [statistics.median(t) for t in times]


def run() -> list[dict[str, Any]]:
    from sot.generator import generate_batch
    from sot.publisher import publish_labels, write_batch

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = FileObjectStore(root / "store")
        for i in range(DAYS + 1):
            batch = generate_batch(NETWORK, FIRST + dt.timedelta(days=i), **SIZE)
            write_batch(store, batch)
            if i < DAYS:
                publish_labels(store, _Nothing(), TopicNames(), batch)
        stack = StackSettings(_env_file=None, home=root / "home", object_store_url=f"file://{root / 'store'}")
        settings = MinerSettings(stack=stack, miner_id="bench", model_dir=root / "models", retrain_every_days=1)
        days = labelled_history(store, NETWORK, FIRST, FIRST + dt.timedelta(days=DAYS - 1), 7)
        builtin = make_scorer("honest-a", scorer_context(settings)).fit(days)
        builtin.save(settings.models_path)
        codec = AvroCodec(FileSchemaRegistry.default())
        key = snapshot_key(NETWORK, FIRST + dt.timedelta(days=DAYS), 7, MANIFEST)
        agents = {}
        for spec in ("honest-a", "bench.bench_outside_miners:plugin_factory"):
            scorer = make_scorer(spec, scorer_context(settings)).load(settings.models_path)
            agents[spec] = MinerAgent(settings, store=store, producer=_Nothing(), codec=codec, scorer=scorer)
        base, plugin = _build_s([agents["honest-a"], agents["bench.bench_outside_miners:plugin_factory"]], key)

        async def during_retraining() -> tuple[float, float]:
            end = FIRST + dt.timedelta(days=DAYS - 1)
            job = asyncio.create_task(run_in_child(retrain_job, settings, FIRST, end))
            await asyncio.sleep(3.0)  # the child has loaded its days and is fitting
            started = time.perf_counter()
            await asyncio.to_thread(agents["honest-a"].build, key)
            scored = time.perf_counter() - started
            started = time.perf_counter()
            await job
            return scored, time.perf_counter() - started

        during, rest = asyncio.run(during_retraining())
    return [
        _row(
            f"agent builds a {SIZE['alerts'] // 1000}k-alert submission, plug-in scorer (module:factory)",
            plugin,
            "s",
            base,
        ),
        _row("  same with the built-in scorer (baseline)", base, "s", None),
        _row("batch scored while a retraining runs (target: within 1 s of the baseline)", during, "s", base),
        _row("  delay against the baseline", during - base, "s", None),
        _row("  retraining still running after that batch", rest, "s", None),
    ]


if __name__ == "__main__":
    from bench.table import print_rows

    print_rows(run())
