"""The Faust agents without a broker: ``test_context()`` with memory tables."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from validator_fakes import DATE, RecordingProducer, make_settings

from simulation import adversarial_panel, make_batch, submission_records, write_batch
from streams.codec import AvroCodec
from streams.objectstore import FileObjectStore
from streams.signing import INBOX
from validator.app import create_validator
from validator.bridge import InboxRecord

T0 = dt.datetime(2026, 1, 2, 6, 0, tzinfo=dt.UTC)


async def test_agents_open_a_round_and_emit_from_inbox_batches(
    tmp_path: Path, codec: AvroCodec, store: FileObjectStore
) -> None:
    settings = make_settings(tmp_path, expected_miners=["honest-1", "honest-2"], take_within_s=0.05)
    validator = create_validator(settings)
    producer = RecordingProducer()
    validator.rounds.producer = producer
    validator.app.finalize()
    sent: list[Any] = []

    def changelog(partition: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append((key, value))  # no broker: record the changelog write, as partition 0
        return SimpleNamespace(message=SimpleNamespace(partition=0))

    for table in validator.app.tables.values():
        table.send_changelog = changelog
    batch = make_batch(120, DATE, seed=2, published_at=T0)
    key = write_batch(store, batch)
    agents: Any = validator.app.agents
    signer = validator.gate.signer
    assert signer is not None
    topics = settings.stack.topics
    async with agents["validate_scores"].test_context() as inbox, agents["open_rounds"].test_context() as batches:
        await batches.put(store.object_created_event(key, 1, "e", T0), key=b"ethereum:2026-01-02")
        panel = adversarial_panel(batch, seed=1)
        for miner in ["honest-1", "honest-2"]:
            for offset, (k, v) in enumerate(submission_records(codec, batch, miner, *panel[miner], T0, chunk_size=30)):
                record = InboxRecord(k.encode(), v, topics.miner_scores(miner), 0, offset)
                headers = dict(record.headers() + signer.headers(INBOX, k.encode(), v, batch_id=record.position))
                await inbox.put(v, key=k.encode(), headers=headers)
        garbage = InboxRecord(b"2026-01-02:0001", b"garbage", topics.miner_scores("x"), 0, 0)
        signed = garbage.headers() + signer.headers(INBOX, garbage.key, garbage.value, batch_id=garbage.position)
        await inbox.put(b"garbage", key=garbage.key, headers=dict(signed))
        forged = InboxRecord(b"2026-01-02:0002", b"forged", topics.miner_scores("honest-1"), 0, 99)
        await inbox.put(b"forged", key=forged.key, headers=dict(forged.headers()))  # not from the bridge: dropped
        # the round closes in a worker thread: wait for it before the agents stop
        for _ in range(600):
            if (validator.tables.batches.get("2026-01-02|ethereum") or {}).get("emitted"):
                break
            await asyncio.sleep(0.05)
    alerts = producer.on(topics.ensemble_alerts)
    assert len(alerts) == 120
    assert len(producer.on(topics.dlq("scores"))) == 1
    assert validator.tables.batches["2026-01-02|ethereum"]["emitted"]
    assert any(k.startswith("2026-01-02|ethereum|honest-1|alert|") for k in validator.tables.chunks)
    assert len(sent) >= 2 * 5  # every table write goes to its changelog
    validator.producer.flush(1)
    validator.bridge_producer.flush(1)
