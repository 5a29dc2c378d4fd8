"""The sink without ClickHouse: a forged record in a poll fails alone; records become rows in table order."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from simulation import as_published, sample_date
from streams.codec import AvroCodec
from streams.kafka import Message
from streams.records import ENSEMBLE_ALERT_SCORE
from streams.schema_registry import FileSchemaRegistry
from streams.signing import VALIDATOR, Signer
from streams.topics import TopicNames
from streams.warehouse_schema import COLUMNS
from warehouse.rows import TableRows, ticks_ms
from warehouse.sink import WarehouseSink

DATE = dt.date(2026, 3, 14)
CODEC = AvroCodec(FileSchemaRegistry.default())
SIGNER = Signer(Ed25519PrivateKey.generate(), VALIDATOR)


class _Inserts:
    """A client that keeps what is inserted, by table."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[Any, ...]]] = {}

    def insert(self, table: str, data: list[list[Any]], *, column_names: list[str], column_oriented: bool) -> None:
        assert column_oriented and len(data) == len(column_names)
        self.rows.setdefault(table.split(".", 1)[1], []).extend(zip(*data, strict=True))


def _messages(topics: TopicNames, alerts: int) -> list[Message]:
    records = sample_date(CODEC, topics, DATE, alerts=alerts, clusters=0, miners=("m1", "m2"))
    published = [p for p in as_published(records, SIGNER, topics) if p[0] != topics.ensemble_batches]  # no marker
    now = int(time.time() * 1000)
    return [Message(t, 0, i, k.encode(), v, now, tuple(h)) for i, (t, k, v, h) in enumerate(published)]


def test_one_forged_record_in_a_poll_checked_on_threads_is_dead_lettered_and_the_rest_stored() -> None:
    topics = TopicNames("t.")
    client = _Inserts()
    sink = WarehouseSink(client, "w", topics, CODEC, validator_key=SIGNER.public_key, verify_threads=2)
    messages = _messages(topics, alerts=3000)  # the poll is checked in parts on both threads
    alerts = [i for i, m in enumerate(messages) if m.topic == topics.ensemble_alerts]
    chunks = [i for i, m in enumerate(messages) if m.topic == topics.validator_inbox]
    forger = Signer(Ed25519PrivateKey.generate(), VALIDATOR)
    forged = {}
    for index, purpose in ((alerts[2000], "ensemble.alerts"), (chunks[1], "inbox")):
        m = messages[index]
        claim = dict(m.headers)
        batch = claim.get("riskstream-batch", b"").decode() or None
        headers = forger.headers(purpose, m.key, m.value, batch_id=batch)  # the right fields, another key
        messages[index] = Message(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp_ms, tuple(headers))
        forged[index] = purpose
    assert sink.write(messages) is True
    dead = sink.take_dead_letters()
    assert [(d.topic, d.offset) for d in dead] == [(messages[i].topic, i) for i in sorted(forged)]
    assert [d.reason for d in dead] == [
        f"unsigned: the signature of 'validator' does not verify ({forged[i]})" for i in sorted(forged)
    ]
    assert sink.metrics.value("riskstream_sink_bad_records_total", kind="unsigned") == 2
    stored = {row[3] for row in client.rows["ensemble_alert_scores"]}  # alert_id
    assert len(stored) == len(alerts) - 1 and f"alert-{DATE.toordinal()}-{2000:06d}" not in stored
    # every miner row is in but the forged chunk's
    chunk = CODEC.decode(messages[chunks[1]].value).record
    submissions = {(row[2], row[4]) for row in client.rows["miner_submissions"]}  # miner_id, entity_id
    assert len(submissions) == 2 * 3000 - len(chunk["alert_ids"])
    assert not submissions & {(chunk["miner_id"], a) for a in chunk["alert_ids"]}
    assert len(client.rows["submission_completions"]) == 2
    assert sink.metrics.value("riskstream_sink_records_in_total", topic=topics.ensemble_alerts) == len(alerts)
    assert sink.metrics.value("riskstream_sink_records_total", record="riskstream.EnsembleAlertScore") == 2999


def test_an_ensemble_record_is_one_row_in_the_order_of_its_table() -> None:
    now = dt.datetime(2026, 3, 15, 1, 2, 3, 456789, tzinfo=dt.UTC)
    record = {
        "network": "ethereum", "processing_date": DATE, "alert_id": "a1", "ensemble_score": 0.5, "confidence": 0.9,
        "miner_count": 2, "miner_agreement": 1.0, "score_std": 0.1, "rank": 7, "version": 3,
        "top_contributors": [{"miner_id": "m1", "weight": 0.6, "score": 0.4}],
    }  # fmt: skip
    rows = TableRows()
    assert rows.add(ENSEMBLE_ALERT_SCORE, record, now, miner_topic=False) is None
    table = dict(rows.tables())["ensemble_alert_scores"]
    assert table.names == COLUMNS["ensemble_alert_scores"]
    ingested = 1_773_536_523_456  # milliseconds, the microseconds dropped as the client drops them
    assert ingested == int(now.timestamp() * 1000) and ticks_ms(now) == ingested
    contributors = record["top_contributors"]
    assert table.columns() == [
        ["ethereum"], [DATE], [3], ["a1"], [0.5], [0.9], [2], [1.0], [0.1], [7], [contributors], [ingested]
    ]  # fmt: skip
    with pytest.raises(ValueError, match="rank must not be negative"):
        rows.add(ENSEMBLE_ALERT_SCORE, {**record, "rank": -1}, now, miner_topic=False)
    with pytest.raises(KeyError):
        rows.add(ENSEMBLE_ALERT_SCORE, {k: v for k, v in record.items() if k != "confidence"}, now, miner_topic=False)
    with pytest.raises(KeyError):  # a contributor without its weight is refused here, not by a failing insert
        rows.add(
            ENSEMBLE_ALERT_SCORE,
            {**record, "top_contributors": [{"miner_id": "m1", "score": 0.4}]},
            now,
            miner_topic=False,
        )
    assert len(table) == 1
