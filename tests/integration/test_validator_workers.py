"""Two validator workers of one app share the inbox partitions; killing one mid-date changes no byte."""

from __future__ import annotations

import datetime as dt
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_validator import CODEC, DATE, T0, Worker, one_by_one, publish_batch, publish_labels, read_all

from simulation import make_batch
from streams.health import ask_services
from streams.kafka import BatchProducer
from streams.kafka_admin import ensure_topics
from streams.settings import StackSettings
from streams.signing import VALIDATOR, Signer, generate_key, key_path, verify_output
from validator.steps import CLOSE, STEPS_PURPOSE, WEIGHTS, MinerStep, Step, decode_step, encode_step

pytestmark = pytest.mark.integration

MINERS = ["honest-1", "honest-2", "honest-3", "copycat"]
EXPECTED = '["' + '","'.join(MINERS) + '"]'
HELD = re.compile(r"inbox partitions held: \[([0-9, ]*)\]")


def _held(log: Path) -> list[int] | None:
    """The partitions a worker said it holds last (None: not said yet)."""
    found = HELD.findall(log.read_text(errors="replace")) if log.exists() else []
    return [int(p) for p in found[-1].split(",") if p.strip()] if found else None


def _wait(what: str, condition: Any, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout}s")
        time.sleep(0.5)


def _by_key(records: list[Any]) -> dict[bytes, bytes]:
    """The latest value per key (a re-emission after a kill repeats the same bytes)."""
    seen: dict[bytes, set[bytes]] = {}
    for key, _, value in records:
        seen.setdefault(key, set()).add(value)
    assert all(len(values) == 1 for values in seen.values()), "one key, two different records"
    return {key: next(iter(values)) for key, values in seen.items()}


def _verdicts(records: list[Any]) -> dict[tuple[bytes, str], dict[str, Any]]:
    """Each miner's verdicts (immediate, ground truth) without the latency: when this run's bridge saw the records."""
    found: dict[tuple[bytes, str], dict[str, Any]] = {}
    for key, record, _ in records:
        record = dict(record)
        record["metrics"] = {k: v for k, v in record["metrics"].items() if k != "latency_s"}
        assert found.setdefault((key, record["stage"]), record) == record, "one verdict, two different records"
    return found


def _run_dates(stack: StackSettings, broker: str, batches: list[Any], kill: Any = None) -> tuple[Any, ...]:
    """Two dates: the first judged by its labels, the second weighed with the priors that gives."""
    first, second = batches
    publish_batch(stack, first)
    if kill is not None:
        _forge_steps(stack)  # a stranger's close and weights: refused, or the round would close early
    one_by_one(stack, first, MINERS[:2])
    if kill is not None:
        kill()
    one_by_one(stack, first, MINERS[2:], already=2)
    topics = stack.topics
    read_all(broker, topics.ensemble_batches, lambda f: len(f) >= 1, timeout=300)
    publish_labels(stack, first)
    truth = len(MINERS) + 1  # and the ensemble's
    read_all(broker, topics.validator_results, lambda f: sum(r["stage"] == "ground_truth" for _, r, _ in f) >= truth)
    publish_batch(stack, second)
    one_by_one(stack, second, MINERS)
    alerts = read_all(broker, topics.ensemble_alerts, lambda f: len(_by_key(f)) >= 600, timeout=300)
    clusters = len(first.cluster_ids) + len(second.cluster_ids)
    found = read_all(broker, topics.ensemble_clusters, lambda f: len(_by_key(f)) >= clusters)
    summary = read_all(broker, topics.ensemble_batches, lambda f: len({k for k, _, _ in f}) >= 2, timeout=120)
    results = read_all(broker, topics.validator_results, lambda f: len(_verdicts(f)) >= 3 * len(MINERS) + 1)
    return alerts, found, summary, results


def _stack(stack_settings: StackSettings, tmp_path: Path, run: str, broker: str) -> StackSettings:
    stack = stack_settings.model_copy(
        update={"topic_namespace": f"{stack_settings.topic_namespace}{run}.", "home": tmp_path / run / "home"}
    )
    (tmp_path / run).mkdir()
    ensure_topics(broker, stack.topics.all_fixed(), 4)
    return stack


@pytest.mark.timeout(1200)
def test_two_workers_one_killed_mid_date_give_the_one_worker_ensemble(
    broker: str, tmp_path: Path, stack_settings: StackSettings
) -> None:
    day = dt.timedelta(days=1)
    batches = [
        make_batch(300, DATE, seed=5, published_at=T0),
        make_batch(300, DATE + day, seed=6, published_at=T0 + day),
    ]
    outputs = []

    # one worker: today's default (the Faust app)
    stack = _stack(stack_settings, tmp_path, "one", broker)
    worker = Worker(stack, tmp_path / "one" / "worker.log", VALIDATOR_EXPECTED_MINERS=EXPECTED)
    try:
        outputs.append(_run_dates(stack, broker, batches))
    finally:
        worker.stop()

    # two workers sharing the partitions; the closer (holder of inbox partition 0) killed mid-date
    stack = _stack(stack_settings, tmp_path, "two", broker)
    logs = [tmp_path / "two" / f"worker-{i}.log" for i in (1, 2)]
    # shares cut in pieces of ~1 kB (each partition holds ~2-3 kB of a miner's chunks)
    env = {
        "VALIDATOR_EXPECTED_MINERS": EXPECTED,
        "VALIDATOR_PARTITIONED": "true",
        "VALIDATOR_PARTIAL_MAX_BYTES": "1024",
    }
    public_key = generate_key(key_path(stack.home, VALIDATOR))  # the workers of one app share the validator key
    workers = [Worker(stack, log, **env) for log in logs]
    try:
        _wait("both workers hold two partitions", lambda: all(len(_held(log) or []) == 2 for log in logs))

        def kill() -> None:  # mid-date: every partition reported the first miners' chunks; the closer goes
            _wait("every partition reported progress", reported)
            closer = next(i for i, log in enumerate(logs) if 0 in (_held(log) or []))
            assert workers[closer].stop(signal.SIGKILL) == -signal.SIGKILL
            survivors.append(logs[1 - closer])

        def reported() -> bool:
            progress = read_all(broker, stack.topics.validator_steps, lambda f: len(f) >= 1, raw=True)
            steps = [decode_step(CODEC, v) for _, v, _ in progress]
            return {s.partition for s in steps if s.step == "progress" and s.miners} == {0, 1, 2, 3}

        survivors: list[Path] = []
        outputs.append(_run_dates(stack, broker, batches, kill))
        assert _held(survivors[0]) == [0, 1, 2, 3]  # the survivor finished the date and the next one
        # and says so on its /health page; its /metrics count what it read and the ensembles it closed
        (alive,) = [s for s in ask_services(stack.home) if s.service.startswith("validator-worker-")]
        assert alive.status == 200 and alive.body["inbox_partitions"] == [0, 1, 2, 3], alive
        assert alive.body["bridge_alive"] and alive.body["of_partitions"] == 4, alive
        metrics = httpx.get(f"{alive.url}/metrics", timeout=10).text
        assert re.search(r'riskstream_validator_records_in_total\{topic="[^"]+"\} [1-9]', metrics), metrics
        assert re.search(r'riskstream_validator_ensembles_total\{trigger="all_complete"\} [1-9]', metrics), metrics
        pieces = 2 * len(MINERS) * 4  # one record per date, miner and partition if none were cut
        read_all(broker, stack.topics.validator_partials, lambda f: len(f) > pieces, raw=True)
        signed = read_all(broker, stack.topics.ensemble_alerts, lambda f: len(f) >= 600, raw=True)
        for key, value, headers in signed:  # signed like every validator output (the sink verifies them)
            verify_output(public_key, stack.topics, stack.topics.ensemble_alerts, key, value, headers)
    finally:
        for w in workers:
            w.stop()

    one, two = outputs
    assert _by_key(two[0]) == _by_key(one[0]) and len(_by_key(one[0])) == 600  # the same ensemble bytes
    assert _by_key(two[1]) == _by_key(one[1])
    assert _verdicts(two[3]) == _verdicts(one[3])  # the same verdicts, immediate and ground truth
    # aggregated_at is the trusted completion time: when this run's bridge saw the markers
    summaries = [{k: {n: v for n, v in r.items() if n != "aggregated_at"} for k, r, _ in out[2]} for out in outputs]
    assert summaries[0] == summaries[1]
    assert {r["trigger"] for r in summaries[1].values()} == {"all_complete"}
    weights = [{m["miner_id"]: m["weight"] for m in r["miners"]} for r in summaries[1].values()]
    assert weights[0] != weights[1]  # the second date's priors come from the first date's final scores


def _forge_steps(stack: StackSettings) -> None:
    """A close and weights for the date, signed by a key that is not the validator's."""
    stranger = Signer(Ed25519PrivateKey.generate(), VALIDATOR)
    producer = BatchProducer(stack.bootstrap_servers)
    for step in (
        Step("ethereum", DATE, 1, CLOSE, trigger="deadline", expected=tuple(MINERS)),
        Step("ethereum", DATE, 1, WEIGHTS, miners=(MinerStep("copycat", weight=1.0),)),
    ):
        value = encode_step(CODEC, step)
        producer.send(
            stack.topics.validator_steps, step.key, value, headers=stranger.headers(STEPS_PURPOSE, step.key, value)
        )
    producer.flush()
