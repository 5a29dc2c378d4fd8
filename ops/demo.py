"""The one-command demo: local stack, trained miners, a few published days, validator, warehouse, gateway.

Every service runs as its own ``riskstream`` process (logs under ``.riskstream/logs``); this
module only starts them, feeds the SOT commands and watches the gateway. Ctrl-C stops all.

    with Demo(DemoPlan.for_today(), stack, env) as demo:
        demo.prepare_history(); demo.train_miners(); demo.start_services()
        demo.publish_days(); demo.wait_for_ensembles(demo.plan.days)
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from ops.processes import ProcessGroup, wait_until
from streams.errors import StackError
from streams.health import ask_services
from streams.progress import say, step
from streams.settings import StackSettings
from streams.stack import free_port


@dataclass(frozen=True, slots=True)
class MinerPlan:
    miner_id: str
    profile: str
    copy_of: str | None = None
    trained: bool = True
    scorer: str | None = None  # a plug-in scorer (module:factory or entry point) instead of the profile

    @property
    def scorer_args(self) -> list[str]:
        return ["--scorer", self.scorer] if self.scorer else ["--profile", self.profile]


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """What the demo publishes and runs; small enough to finish in a few minutes on 2 cores."""

    network: str
    history: tuple[dt.date, ...]  # labelled days the miners train on (written, never announced)
    days: tuple[dt.date, ...]  # days announced on sot.batches and ensembled
    alerts: int = 2_000
    addresses: int = 10_000
    flows: int = 200_000
    clusters: int = 100
    deadline_s: float = 60.0
    gateway_port: int = 9000
    configure_expected: bool = True  # False: the validator learns the miners from their registrations
    miners: tuple[MinerPlan, ...] = field(
        default=(
            MinerPlan("miner-a", "honest-a"),
            MinerPlan("miner-b", "honest-b"),
            MinerPlan("miner-c", "copycat", copy_of="miner-a", trained=False),
        )
    )

    @classmethod
    def for_today(cls, days: int = 3, history: int = 8, network: str = "ethereum", **sizes: Any) -> DemoPlan:
        # announced days are old enough (tau = 7) for the earliest one's labels to be due today
        today = dt.datetime.now(dt.UTC).date()
        first = today - dt.timedelta(days=7 + days)
        announced = tuple(first + dt.timedelta(days=i) for i in range(days))
        trained = tuple(first - dt.timedelta(days=history + 2 - i) for i in range(history))
        return cls(network=network, history=trained, days=announced, **sizes)

    @property
    def sot_env(self) -> dict[str, str]:
        return {
            "SOT_NETWORK": self.network,
            "SOT_ALERTS": str(self.alerts),
            "SOT_ADDRESSES": str(self.addresses),
            "SOT_FLOWS": str(self.flows),
            "SOT_CLUSTERS": str(self.clusters),
        }


class Demo:
    """Runs a ``DemoPlan`` as separate processes; leaving the ``with`` block stops every one."""

    def __init__(self, plan: DemoPlan, stack: StackSettings, env: dict[str, str], cwd: Path | None = None) -> None:
        self.plan = plan
        self.stack = stack
        self.gateway_url = f"http://127.0.0.1:{plan.gateway_port}"
        self.processes = ProcessGroup(stack.home / "logs", {**env, **plan.sot_env}, cwd)

    def __enter__(self) -> Demo:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        with step("stopping every process the demo started"):
            self.processes.stop()

    def _sot(self, name: str, *args: str) -> None:
        self.processes.run(name, ["sot", *args])

    def prepare_history(self) -> None:
        """Write the training days and publish their ground truth (the miners learn from it)."""
        for day in self.plan.history:
            with step(f"history {day}: batch + labels"):
                self._sot(f"sot-generate-{day}", "generate", "--date", day.isoformat())
                self._sot(f"sot-labels-{day}", "labels", "--date", day.isoformat())

    def train_miners(self) -> None:
        start, end = self.plan.history[0].isoformat(), self.plan.history[-1].isoformat()
        for miner in self.plan.miners:
            if not miner.trained:
                continue
            with step(f"training {miner.miner_id} ({miner.profile}) on {start}..{end}"):
                self.processes.run(
                    f"train-{miner.miner_id}",
                    [
                        "miner",
                        "train",
                        "--miner-id",
                        miner.miner_id,
                        *miner.scorer_args,
                        "--start-date",
                        start,
                        "--end-date",
                        end,
                        "--network",
                        self.plan.network,
                    ],  # fmt: skip
                    timeout=900,
                )

    def start_services(self) -> None:
        miners = self.plan.miners if self.plan.configure_expected else ()
        expected = [a for m in miners for a in ("--expected-miner", m.miner_id)]
        with step("starting validator, warehouse sink, gateway and miners"):
            self.processes.start(
                "validator", ["validator", "worker", *expected, "--deadline", str(self.plan.deadline_s)]
            )
            # the sink owns the chDB path and serves its reads; the gateway only reads, through it
            self.processes.start("warehouse", ["warehouse", "sink"])
            self.processes.start("gateway", ["gateway", "serve", "--port", str(self.plan.gateway_port)])
            for miner in self.plan.miners:
                args = ["miner", "run", "--miner-id", miner.miner_id, *miner.scorer_args]
                args += ["--network", self.plan.network]
                if miner.copy_of:
                    args += ["--copy-of", miner.copy_of]
                self.processes.start(miner.miner_id, args)
            wait_until("the gateway to answer (the sink's tables ready)", self._gateway_up, timeout=120)
            # submissions that reach the broker before the validator's bridge reads it have no known order
            wait_until("the validator's bridge to read the miners' topics", self._bridge_reading, timeout=120)
        self.processes.check()

    def _bridge_reading(self) -> bool:
        self.processes.check()
        return any(
            s.service == "validator" and s.body.get("bridge_reading")
            for s in ask_services(self.stack.home, timeout=2.0)
        )

    def _gateway_up(self) -> bool:
        self.processes.check()
        try:
            return httpx.get(f"{self.gateway_url}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def publish_days(self, days: tuple[dt.date, ...] | None = None) -> None:
        days = days or self.plan.days
        for day in days:
            with step(f"publishing {self.plan.network} {day} on sot.batches"):
                self._sot(f"sot-publish-{day}", "publish", "--date", day.isoformat())

    def available(self) -> dict[str, int]:
        """processing_date -> newest ensemble version queryable in the gateway."""
        self.processes.check()
        try:
            answer = httpx.get(f"{self.gateway_url}/dates/available", timeout=5.0)
        except httpx.HTTPError:
            return {}
        if answer.status_code != 200:
            return {}
        return {str(row["processing_date"]): int(row["version"]) for row in answer.json()["dates"]}

    def wait_for_ensembles(self, days: tuple[dt.date, ...], min_version: int = 1, timeout: float = 600) -> None:
        for day in days:
            wanted = day.isoformat()
            with step(f"waiting for the ensemble of {day} (version >= {min_version}) in the gateway"):
                wait_until(
                    f"the ensemble of {day}",
                    lambda wanted=wanted: self.available().get(wanted, 0) >= min_version,  # type: ignore[misc]
                    timeout=timeout,
                    interval=1.0,
                )

    def publish_labels(self, day: dt.date) -> None:
        with step(f"publishing the ground truth of {day} on sot.labels"):
            self._sot(f"sot-labels-{day}", "labels", "--date", day.isoformat())

    def where_to_look(self) -> str:
        topics = self.stack.topics
        first = self.plan.days[0].isoformat()
        return "\n".join(
            [
                "",
                "riskstream is running:",
                f"  gateway      {self.gateway_url}/        (leaderboard, score distribution, calibration)",
                f"  API docs     {self.gateway_url}/docs    OpenAPI: {self.gateway_url}/openapi.json",
                f"  try          curl '{self.gateway_url}/ensemble/rankings/alerts/latest?limit=5'",
                f"               curl '{self.gateway_url}/validation/{first}'",
                f"  warehouse    {self.stack.warehouse_reads_url}/metrics (the sink; ClickHouse HTTP reads at /)",
                "  metrics      <url>/metrics of each service `riskstream stack status` lists (beside /health)",
                f"  broker       {self.stack.bootstrap_servers}",
                f"  topics       {topics.ensemble_alerts}, {topics.ensemble_batches}, {topics.validator_results}, "
                f"{topics.miner_scores('miner-a')}",
                f"  subscribe    python gateway/examples/consume_ensemble_alerts.py --bootstrap "
                f"{self.stack.bootstrap_servers} --registry {self.gateway_url} --topic {topics.ensemble_alerts} "
                "--session-timeout-ms 6000",
                f"  replay       riskstream replay --date {first} --from scores",
                f"  logs         {self.processes.log_dir}/",
                "Ctrl-C stops every process.",
            ]
        )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(plan: DemoPlan, stack: StackSettings, env: dict[str, str], keep_running: bool = True) -> None:
    """Run the plan; Ctrl-C or SIGTERM at any step stops every process it started."""
    # explicit handlers: a shell that starts us in the background leaves SIGINT ignored
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    with Demo(plan, stack, env) as demo:
        try:
            demo.prepare_history()
            demo.train_miners()
            demo.start_services()
            demo.publish_days()
            demo.wait_for_ensembles(plan.days)
            demo.publish_labels(plan.days[0])
            say(demo.where_to_look())
            while keep_running:
                demo.processes.check()
                time.sleep(2.0)
        except KeyboardInterrupt:
            say("interrupted")
        except StackError as exc:
            say(f"a service stopped: {exc}")
            raise


def isolated_run(home: Path, bootstrap_servers: str, namespace: str = "") -> tuple[StackSettings, dict[str, str]]:
    """Settings and child environment for a self-contained run under ``home`` on a shared broker.

    Its own object store, ClickHouse path and read port, topic namespace, validator app id and sink
    group, so tests and benchmarks never see each other's data.
    """
    stack = StackSettings(
        _env_file=None,
        home=home,
        bootstrap_servers=bootstrap_servers,
        object_store_url=f"file://{home / 'store'}",
        clickhouse_url=f"chdb://{home / 'chdb'}",
        warehouse_reads_url=f"http://127.0.0.1:{free_port()}",
        topic_namespace=namespace,
    )
    services = ("RISKSTREAM_", "SOT_", "MINER_", "VALIDATOR_", "WAREHOUSE_", "GATEWAY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(services)}
    env |= stack_env(stack, home)
    env |= {
        "VALIDATOR_APP_ID": f"validator-{namespace or 'main'}",
        "WAREHOUSE_GROUP_ID": f"sink-{namespace or 'main'}",
    }
    return stack, env


def stack_env(stack: StackSettings, home: Path) -> dict[str, str]:
    """Environment of the child processes: the stack's connection settings, explicitly."""
    return {
        "RISKSTREAM_HOME": str(home),
        "RISKSTREAM_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        "RISKSTREAM_OBJECT_STORE_URL": stack.object_store_url,
        "RISKSTREAM_CLICKHOUSE_URL": stack.clickhouse_url,
        "RISKSTREAM_WAREHOUSE_READS_URL": stack.warehouse_reads_url,
        "RISKSTREAM_TOPIC_NAMESPACE": stack.topic_namespace,
    }
