"""The agent without a broker: events in, Avro records out, bad batches reported, profiles behave."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from miner_synth import Published, event_for, make_batch, parquet_bytes, publish

from miner.agent import FAILED, STOPPED, SUBMITTED, MinerAgent
from miner.app import scorer_context
from miner.errors import MinerError
from miner.model_store import ModelStore
from miner.plugins import make_scorer
from miner.scoring import BatchScores
from miner.settings import MinerSettings
from miner.submitted import SubmittedBatches
from streams.batch import Manifest
from streams.codec import AvroCodec
from streams.kafka import Message
from streams.objectstore import FileObjectStore, sha256_hex
from streams.schema_registry import FileSchemaRegistry
from streams.settings import StackSettings
from streams.signing import SCORE, Signer, verify
from streams.submission import submission_checksum

CODEC = AvroCodec(FileSchemaRegistry.default())
SIGNER = Signer(Ed25519PrivateKey.generate(), "m1")


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []
        self.headers: list[list[tuple[str, bytes]] | None] = []
        self.flushed = 0

    def send(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        assert isinstance(key, str) and value is not None
        self.sent.append((topic, key, value))
        self.headers.append(None if headers is None else list(headers))

    def flush(self, timeout: float = 60.0) -> None:
        self.flushed = len(self.sent)

    def on(self, topic: str) -> list[tuple[str, Any]]:
        return [(k, CODEC.decode(v)) for t, k, v in self.sent if t == topic]


class FakeConsumer:
    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages
        self.commits: list[int] = []
        self.delivered = 0

    async def batches(self) -> AsyncIterator[list[Message]]:
        while True:
            if self.delivered < len(self.messages):
                self.delivered += 1
                yield [self.messages[self.delivered - 1]]
            else:
                await asyncio.sleep(0.01)

    async def commit(self) -> None:
        self.commits.append(self.delivered)


def _settings(tmp_path: Path, **kw: Any) -> MinerSettings:
    stack = StackSettings(_env_file=None, home=tmp_path / "home", topic_namespace="t.", score_buckets=4)
    return MinerSettings(stack=stack, **{"miner_id": "m1", "chunk_size": 100, **kw})


def _agent(
    tmp_path: Path, store: FileObjectStore, model_store: ModelStore, **kw: Any
) -> tuple[MinerAgent, FakeProducer]:
    producer = FakeProducer()
    peers = kw.pop("peers", None)
    submitted = kw.pop("submitted", None)
    settings = _settings(tmp_path, model_dir=model_store.directory, **kw)
    context = scorer_context(settings, peers)
    agent = MinerAgent(
        settings,
        store=store,
        producer=producer,
        codec=CODEC,
        scorer=make_scorer(settings.scorer_spec, context),
        stopping=context.stopping,
        signer=SIGNER,
        submitted=submitted,
    )
    return agent, producer


def _message(store: FileObjectStore, key: str, offset: int = 0) -> Message:
    return Message("t.sot.batches", 0, offset, b"ethereum:x", event_for(store, key), 0)


def _submission(producer: FakeProducer, topic: str = "t.scores.m1") -> dict[str, Any]:
    records = producer.on(topic)
    alerts = [d.record for _, d in records if d.name == "riskstream.AlertScoreBatch"]
    clusters = [d.record for _, d in records if d.name == "riskstream.ClusterScoreBatch"]
    complete = [d.record for _, d in records if d.name == "riskstream.SubmissionComplete"]
    return {"alerts": alerts, "clusters": clusters, "complete": complete, "keys": [k for k, _ in records]}


async def test_a_batch_event_yields_a_complete_submission(
    tmp_path: Path, published: Published, model_store_a: ModelStore
) -> None:
    agent, producer = _agent(tmp_path, published.store, model_store_a)
    key = published.keys[-1]
    [outcome] = await agent.handle(_message(published.store, key))
    assert outcome.status == SUBMITTED
    sub = _submission(producer)
    [complete] = sub["complete"]
    ids = [i for r in sub["alerts"] for i in r["alert_ids"]]
    scores = [s for r in sub["alerts"] for s in r["scores"]]
    ranks = [r for rec in sub["alerts"] for r in rec["ranks"]]
    cids = [i for r in sub["clusters"] for i in r["cluster_ids"]]
    cscores = [s for r in sub["clusters"] for s in r["scores"]]
    synth = published.held_out[-1]
    assert sorted(ids) == sorted(synth.tables["alerts.parquet"]["alert_id"].to_pylist())
    assert sorted(cids) == sorted(synth.tables["clusters.parquet"]["cluster_id"].to_pylist())
    assert sorted(ranks) == list(range(1, len(ids) + 1))
    best = ids[ranks.index(1)]
    assert scores[ids.index(best)] == max(scores)
    assert complete["alert_count"] == len(ids) and complete["cluster_count"] == len(cids)
    assert complete["alert_chunks"] == len(sub["alerts"]) and complete["cluster_chunks"] == len(sub["clusters"])
    manifest = Manifest.from_json(published.store.get(key))
    for (_, record_key, value), headers in zip(producer.sent, producer.headers, strict=True):
        claim = verify(SIGNER.public_key, SCORE, "m1", record_key, value, headers)  # every chunk and the marker
        assert (claim.date, claim.batch_id) == (manifest.processing_date.isoformat(), manifest.batch_id)
    assert complete["checksum"] == submission_checksum(ids, scores, cids, cscores)
    assert complete["model_versions"]["alert_scorer"].startswith("alert_scorer_ethereum_v1.0.0_")
    assert sub["keys"][-1] == f"{synth.date.isoformat()}:complete"
    assert all(len(r["alert_ids"]) <= 100 for r in sub["alerts"])
    assert all(k.startswith(synth.date.isoformat() + ":0") for k in sub["keys"][:-1])
    assert producer.flushed == len(producer.sent)
    assert all(r["miner_id"] == "m1" and r["batch_id"] == f"ethereum-{synth.date}-snapshot" for r in sub["alerts"])


async def test_the_same_event_twice_gives_the_same_scores(
    tmp_path: Path, published: Published, model_store_a: ModelStore
) -> None:
    agent, producer = _agent(tmp_path, published.store, model_store_a)
    message = _message(published.store, published.keys[-2])
    await agent.handle(message)
    first = _submission(producer)
    producer.sent.clear()
    agent.reannounced = lambda message: True  # an operator re-announced it (riskstream replay --from sot)
    await agent.handle(message)
    second = _submission(producer)
    strip = ("latency_ms", "produced_at")
    for kind in ("alerts", "clusters", "complete"):
        assert [{k: v for k, v in r.items() if k not in strip} for r in first[kind]] == [
            {k: v for k, v in r.items() if k not in strip} for r in second[kind]
        ]
    assert first["keys"] == second["keys"]


def _corrupt_copy(published: Published, tmp_path: Path, how: str) -> tuple[FileObjectStore, str]:
    store = FileObjectStore(tmp_path / f"store-{how}")
    synth = make_batch(dt.date(2026, 4, 1), alerts=100, flows=500)
    key = publish(store, synth, labels=False)
    folder = key.removesuffix("manifest.json")
    if how == "missing":
        (store.root / folder / "money_flows.parquet").unlink()
    elif how == "checksum":
        corrupted = bytearray(store.get(folder + "alerts.parquet"))
        corrupted[-20] ^= 0xFF
        store.put(folder + "alerts.parquet", bytes(corrupted))
    elif how == "column":
        table = pq.read_table(io.BytesIO(store.get(folder + "features.parquet"))).drop_columns(["pagerank"])
        data = parquet_bytes(table)
        store.put(folder + "features.parquet", data)
        manifest = Manifest.from_json(store.get(key))
        files = dict(manifest.files)
        files["features.parquet"] = type(files["features.parquet"])(table.num_rows, sha256_hex(data), len(data))
        store.put(key, Manifest(**{**{f: getattr(manifest, f) for f in manifest.__slots__}, "files": files}).to_json())
    elif how == "manifest":
        store.put(key, b"{not json")
    return store, key


@pytest.mark.parametrize(
    ("how", "error_type"),
    [
        ("missing", "MissingFileError"),
        ("checksum", "ChecksumError"),
        ("column", "BatchSchemaError"),
        ("manifest", "BatchSchemaError"),
    ],
)
async def test_a_bad_batch_is_reported_and_nothing_is_submitted(
    how: str, error_type: str, tmp_path: Path, published: Published, model_store_a: ModelStore
) -> None:
    store, key = _corrupt_copy(published, tmp_path, how)
    agent, producer = _agent(tmp_path, store, model_store_a)
    [outcome] = await agent.handle(_message(store, key))
    assert outcome.status == FAILED
    assert producer.on("t.scores.m1") == []
    [(err_key, error)] = producer.on("t.miner.errors")
    assert err_key == "ethereum:2026-04-01"
    assert error.name == "riskstream.MinerError"
    assert error.record["error_type"] == error_type
    assert error.record["batch_key"] == key
    assert error.record["miner_id"] == "m1"


async def test_the_loop_reports_a_bad_batch_then_serves_the_next(
    tmp_path: Path, published: Published, model_store_a: ModelStore
) -> None:
    bad_store, bad_key = _corrupt_copy(published, tmp_path, "checksum")
    good_key = published.keys[-1]
    for key in published.store.list(good_key.removesuffix("manifest.json")):
        bad_store.put(key, published.store.get(key))
    not_a_batch = Message("t.sot.batches", 0, 2, None, b"garbage", 0)
    other_object = _message(bad_store, good_key.replace("manifest.json", "alerts.parquet"), 3)
    consumer = FakeConsumer(
        [_message(bad_store, bad_key, 0), not_a_batch, other_object, _message(bad_store, good_key, 1)]
    )
    agent, producer = _agent(tmp_path, bad_store, model_store_a)
    stats = await asyncio.wait_for(agent.run(consumer, max_batches=3), 30)
    assert (stats.submitted, stats.failed, stats.skipped) == (1, 2, 1)
    assert consumer.commits == [1, 2, 3, 4]
    assert len(producer.on("t.miner.errors")) == 2
    assert len(_submission(producer)["complete"]) == 1


async def test_an_honest_miner_without_models_says_so(tmp_path: Path, published: Published) -> None:
    agent, producer = _agent(tmp_path, published.store, ModelStore(tmp_path / "empty"))
    [outcome] = await agent.handle(_message(published.store, published.keys[-1]))
    assert outcome.status == FAILED and "riskstream miner train" in outcome.error
    [(_, error)] = producer.on("t.miner.errors")
    assert error.record["error_type"] == "ModelNotFoundError"
    assert producer.on("t.scores.m1") == []


@pytest.mark.parametrize("profile", ["random", "constant"])
async def test_gaming_profiles_are_seeded_by_miner_and_date(tmp_path: Path, published: Published, profile: str) -> None:
    empty = ModelStore(tmp_path / "none")
    runs = []
    for miner_id in ("m1", "m1", "m2"):
        agent, producer = _agent(tmp_path, published.store, empty, profile=profile, miner_id=miner_id)
        await agent.handle(_message(published.store, published.keys[-1]))
        runs.append([s for r in _submission(producer, f"t.scores.{miner_id}")["alerts"] for s in r["scores"]])
    assert runs[0] == runs[1]
    if profile == "random":
        assert runs[0] != runs[2] and len(set(runs[0])) > 100
    else:
        assert set(runs[0]) == {0.5}


async def test_partial_sends_part_of_the_alerts(
    tmp_path: Path, published: Published, model_store_a: ModelStore
) -> None:
    agent, producer = _agent(tmp_path, published.store, model_store_a, profile="partial", partial_fraction=0.5)
    await agent.handle(_message(published.store, published.keys[-1]))
    sub = _submission(producer)
    assert sub["complete"][0]["alert_count"] == 400
    assert sorted(r for rec in sub["alerts"] for r in rec["ranks"]) == list(range(1, 401))


async def test_late_holds_its_submission_and_stops_cleanly(
    tmp_path: Path, published: Published, model_store_a: ModelStore
) -> None:
    agent, producer = _agent(tmp_path, published.store, model_store_a, profile="late", delay_s=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    [outcome] = await agent.handle(_message(published.store, published.keys[-1]))
    assert outcome.status == SUBMITTED and loop.time() - started >= 0.3
    agent2, producer2 = _agent(tmp_path, published.store, model_store_a, profile="late", delay_s=30)
    task = asyncio.create_task(agent2.handle(_message(published.store, published.keys[-1])))
    await asyncio.sleep(0.5)
    agent2.stop.set()
    [stopped] = await asyncio.wait_for(task, 5)
    assert stopped.status == STOPPED and producer2.sent == []


class FakePeers:
    def __init__(self, scores: BatchScores | None) -> None:
        self.scores = scores
        self.asked: list[tuple[str, dt.date]] = []

    def read(self, miner_id: str, manifest: Manifest, timeout_s: float) -> BatchScores:
        self.asked.append((miner_id, manifest.processing_date))
        if self.scores is None:
            from miner.errors import PeerSubmissionError

            raise PeerSubmissionError("nothing to copy")
        return self.scores


async def test_copycat_reemits_its_source_with_small_noise(tmp_path: Path, published: Published) -> None:
    ids = published.held_out[-1].tables["alerts.parquet"]["alert_id"].to_pylist()[:50]
    cluster = published.held_out[-1].tables["clusters.parquet"]["cluster_id"].to_pylist()[0]
    source = BatchScores(ids, np.linspace(0, 1, 50), [cluster], np.array([0.7]), {"alert_scorer": "v9"})
    peers = FakePeers(source)
    agent, producer = _agent(
        tmp_path, published.store, ModelStore(tmp_path / "none"), profile="copycat", copy_of="m0", peers=peers
    )
    await agent.handle(_message(published.store, published.keys[-1]))
    sub = _submission(producer)
    copied = dict(
        zip(
            [i for r in sub["alerts"] for i in r["alert_ids"]],
            [s for r in sub["alerts"] for s in r["scores"]],
            strict=True,
        )
    )
    assert peers.asked == [("m0", published.held_out[-1].date)]
    assert set(copied) == set(ids)
    diffs = np.array([copied[i] - s for i, s in zip(ids, source.alert_scores, strict=True)])
    assert np.abs(diffs).max() <= 0.01 and np.abs(diffs).max() > 0
    assert sub["complete"][0]["model_versions"] == {"alert_scorer": "copycat-of-v9"}
    nothing, producer2 = _agent(
        tmp_path,
        published.store,
        ModelStore(tmp_path / "none"),
        profile="copycat",
        copy_of="m0",
        peers=FakePeers(None),
    )
    [outcome] = await nothing.handle(_message(published.store, published.keys[-1]))
    assert outcome.status == FAILED and producer2.on("t.scores.m1") == []


def test_copycat_needs_a_source(tmp_path: Path, published: Published) -> None:
    with pytest.raises(MinerError, match="copy_of"):
        _agent(tmp_path, published.store, ModelStore(tmp_path), profile="copycat")


async def test_an_unexpected_failure_is_reported_not_fatal(
    tmp_path: Path, published: Published, model_store_a: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import miner.xgboost_scorer

    def broken(batch: object) -> None:
        raise ValueError("a library choked on this batch")

    agent, producer = _agent(tmp_path, published.store, model_store_a)
    with monkeypatch.context() as patch:
        patch.setattr(miner.xgboost_scorer, "build_alert_features", broken)
        [outcome] = await agent.handle(_message(published.store, published.keys[-1]))
    assert outcome.status == FAILED
    [(_, error)] = producer.on("t.miner.errors")
    assert error.record["error_type"] == "ValueError" and "choked" in error.record["message"]
    assert producer.on("t.scores.m1") == []
    [again] = await agent.handle(_message(published.store, published.keys[-1]))
    assert again.status == SUBMITTED


def test_registration_record_encodes_with_the_shared_schema() -> None:
    import datetime as dt

    from miner.records import registration_record
    from streams.codec import AvroCodec
    from streams.schema_registry import FileSchemaRegistry

    codec = AvroCodec(FileSchemaRegistry.default())
    when = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    record = registration_record(
        miner_id="miner-a", profile="honest-a", network="ethereum", model_versions={"alert_scorer": "v1"},
        registered_at=when, public_key=SIGNER.public_key,
    )  # fmt: skip
    decoded = codec.decode(codec.encode(record.schema, record.value))
    assert record.key == "miner-a"
    assert decoded.record == {
        "miner_id": "miner-a", "profile": "honest-a", "networks": ["ethereum"],
        "model_versions": {"alert_scorer": "v1"}, "registered_at": when, "public_key": SIGNER.public_key,
    }  # fmt: skip


async def test_a_repeat_announcement_is_scored_again_only_when_an_operator_signed_it(
    tmp_path: Path, published: Published, model_store_a: ModelStore
) -> None:
    agent, producer = _agent(tmp_path, published.store, model_store_a)
    agent.reannounced = lambda message: dict(message.headers).get("operator") == b"yes"
    key = published.keys[-1]
    [first] = await agent.handle(_message(published.store, key))
    sent = len(producer.sent)
    [again] = await agent.handle(_message(published.store, key, offset=1))  # a stranger's repeat
    assert (first.status, again.status) == (SUBMITTED, "skipped") and len(producer.sent) == sent
    signed = _message(published.store, key, offset=2)
    signed = Message(signed.topic, 0, 2, signed.key, signed.value, 0, (("operator", b"yes"),))
    [replayed] = await agent.handle(signed)
    assert replayed.status == SUBMITTED and len(producer.sent) == 2 * sent


async def test_a_restarted_miner_still_refuses_a_strangers_repeat_of_a_batch_it_submitted(
    tmp_path: Path, published: Published, model_store_a: ModelStore
) -> None:
    key = published.keys[-1]
    kept = tmp_path / "state" / "submitted"
    agent, producer = _agent(tmp_path, published.store, model_store_a, submitted=SubmittedBatches(kept))
    [first] = await agent.handle(_message(published.store, key))
    assert first.status == SUBMITTED
    # a new process: nothing in memory, the same file
    restarted, producer = _agent(tmp_path, published.store, model_store_a, submitted=SubmittedBatches(kept))
    restarted.reannounced = lambda message: False
    [again] = await restarted.handle(_message(published.store, key, offset=1))
    assert again.status == "skipped" and producer.sent == []


def test_the_submitted_set_survives_a_torn_last_line_and_is_compacted(tmp_path: Path) -> None:
    from miner import submitted as module

    path = tmp_path / "submitted"
    kept = SubmittedBatches(path)
    for i in range(5):
        kept.add(f"snapshots/ethereum/2026-01-0{i + 1}/0/manifest.json")
    kept.add("snapshots/ethereum/2026-01-01/0/manifest.json")  # again: moves to the newest end
    with path.open("a") as out:
        out.write("snapshots/ethereum/2026-01-09/0/mani")  # a crash mid-write: a key that was never reported
    old_keep, module.KEEP = module.KEEP, 3
    try:
        reloaded = SubmittedBatches(path)
    finally:
        module.KEEP = old_keep
    assert len(reloaded) == 3
    assert "snapshots/ethereum/2026-01-01/0/manifest.json" in reloaded  # the newest three survive compaction
    assert "snapshots/ethereum/2026-01-02/0/manifest.json" not in reloaded
    assert "snapshots/ethereum/2026-01-09/0/mani" not in reloaded
    assert len(path.read_text().splitlines()) == 3 and path.read_text().endswith("\n")
