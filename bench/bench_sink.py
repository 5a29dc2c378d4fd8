"""Benchmark: the warehouse sink's rows/s and µs a row, split into verify / decode / build / insert.

One ensemble day (N alerts, N/10 clusters, its results and batch marker) plus M miners' inbox
copies, built with the project's own codec and signed as the validator signs its outputs and its
bridge signs each forwarded miner record (setup, not timed). The records go through
``WarehouseSink.write`` in polls of the runner's size into a fresh chDB database, without a
broker. Each stage is then timed alone over the same records: verifying the signatures, decoding
the Avro, building the column rows, inserting them. Baselines in the same run: the bare
``client.insert`` of the same columns, fastavro's ``schemaless_reader`` alone over the same bytes,
and one libsodium verification per signed record. Last, the runner's path: the same records
produced to a local broker, consumed alone (the baseline), then consumed and written.

    .venv/bin/python -m bench.bench_sink
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastavro import parse_schema, schemaless_reader
from nacl.bindings import crypto_sign_open

from simulation import as_messages, as_published, sample_date
from streams.codec import AvroCodec
from streams.kafka import BatchProducer, Message
from streams.kafka_admin import ensure_topics
from streams.kafka_readers import AsyncBatchConsumer
from streams.schema_registry import FileSchemaRegistry
from streams.settings import StackSettings
from streams.signing import (
    VALIDATOR,
    SignedClaim,
    Signer,
    canonical_bytes,
    claim_of,
    output_purposes,
    verify_from_validator,
)
from streams.stack import free_port, start_broker, stop_process_group, wait_for_broker
from streams.topics import TopicNames
from streams.warehouse_schema import connect
from warehouse.rows import TableRows
from warehouse.settings import WarehouseSettings
from warehouse.sink import VERIFY_PART, WarehouseSink

ALERTS = 100_000
MINERS = tuple(f"m{i}" for i in range(1, 6))
DATE = dt.date(2026, 1, 15)
POLL = WarehouseSettings(_env_file=None).max_records


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _inputs(codec: AvroCodec, topics: TopicNames, signer: Signer) -> list[Message]:
    records = sample_date(codec, topics, DATE, alerts=ALERTS, clusters=ALERTS // 10, miners=MINERS)
    return as_messages(as_published(records, signer, topics))


def run() -> list[dict[str, Any]]:
    codec = AvroCodec(FileSchemaRegistry.default())
    topics = TopicNames()
    signer = Signer(Ed25519PrivateKey.generate(), VALIDATOR)
    messages = _inputs(codec, topics, signer)
    with tempfile.TemporaryDirectory() as tmp:
        client = connect(StackSettings(_env_file=None, clickhouse_url=f"chdb://{Path(tmp) / 'chdb'}"))
        try:
            return _measure(client, codec, topics, signer, messages)
        finally:
            client.close()


def _measure(
    client: Any, codec: AvroCodec, topics: TopicNames, signer: Signer, messages: list[Message]
) -> list[dict[str, Any]]:
    public = signer.public_key

    def sink_in(database: str) -> WarehouseSink:
        sink = WarehouseSink(client, database, topics, codec, validator_key=public, marker_timeout_s=3600)
        sink.ensure_tables()
        return sink

    # the whole path, as the runner drives it: one write (add every record, then flush) per poll
    whole = sink_in("bench_sink_whole")
    total_wall, total_cpu, rows = _write(whole, messages)
    insert_in_write = whole.metrics.value("riskstream_sink_insert_seconds_sum")
    # the two kinds apart: at many miners nearly every row is a miner score, 1,000 to a signed record
    inbox = [m for m in messages if m.topic == topics.validator_inbox]
    _, inbox_cpu, inbox_rows = _write(sink_in("bench_sink_inbox"), inbox)
    outputs = [m for m in messages if m.topic != topics.validator_inbox]
    _, outputs_cpu, _ = _write(sink_in("bench_sink_outputs"), outputs)

    # each stage alone, over the same records
    staged = sink_in("bench_sink_stages")
    claims: list[Any] = []

    def verify() -> None:  # as add_all checks them: parts of a poll on the sink's threads
        records = [(m.topic, m.key, m.value, m.headers) for m in messages]
        parts = [records[start : start + VERIFY_PART] for start in range(0, len(records), VERIFY_PART)]
        with ThreadPoolExecutor(staged.verify_threads) as pool:
            for part in pool.map(lambda part: verify_from_validator(public, topics, part), parts):
                claims.extend(part)

    verify_s, verify_cpu = _timed(verify)
    assert all(isinstance(c, SignedClaim) for c in claims)
    sources = [
        m.topic if m.topic != topics.validator_inbox else c.batch_id.rsplit(":", 2)[0]
        for m, c in zip(messages, claims, strict=True)
    ]
    decoded: list[Any] = []
    decode_s, _ = _timed(lambda: decoded.extend(codec.decode(m.value) for m in messages))
    now = dt.datetime.now(dt.UTC)
    tables = TableRows()

    def build() -> None:
        for source, d in zip(sources, decoded, strict=True):
            tables.add(d.name, d.record, now, miner_topic=topics.miner_id_of(source) is not None)

    build_s, _ = _timed(build)
    built = {table: columns for table, columns in tables.tables() if len(columns)}

    def insert() -> None:
        for table, columns in built.items():
            staged._insert(table, columns)

    insert_s, _ = _timed(insert)

    # baselines: the bare insert of the same columns, fastavro alone, libsodium alone
    bare = sink_in("bench_sink_bare")
    prepared = [(f"{bare.database}.{t}", c.columns(), list(c.names)) for t, c in built.items()]
    bare_insert_s, _ = _timed(
        lambda: [client.insert(t, data, column_names=names, column_oriented=True) for t, data, names in prepared]
    )
    parsed = {i: parse_schema(codec.registry.by_id(i).schema) for i in {d.schema_id for d in decoded}}
    schemas = [parsed[d.schema_id] for d in decoded]
    bare_decode_s, _ = _timed(
        lambda: [schemaless_reader(_body(m.value), s, None) for m, s in zip(messages, schemas, strict=True)]
    )
    signed = [_signed_bytes(topics, m) for m in messages]
    key = bytes.fromhex(public)
    bare_verify_s, _ = _timed(lambda: [crypto_sign_open(s, key) for s in signed])

    per_row = 1e6 / rows
    case = f"{ALERTS // 1000}k-alert day x {len(MINERS)} miners ({len(messages)} records, {rows} rows)"
    out = [
        _row(f"{case}: whole write, polls of {POLL}", rows / total_wall, "rows/s"),
        _row(f"{case}: whole write, CPU a row", total_cpu * per_row, "us/row"),
        _row(f"{case}: whole write, wall a row", total_wall * per_row, "us/row"),
        _row(f"{case}:   of which inside insert statements", insert_in_write * per_row, "us/row"),
        _row(f"{case}: inbox copies alone ({len(inbox)} records, {inbox_rows} miner rows), CPU a row",
             inbox_cpu * 1e6 / inbox_rows, "us/row"),
        _row(f"{case}: validator outputs alone ({len(outputs)} records), CPU a record",
             outputs_cpu * 1e6 / len(outputs), "us/record"),
    ]  # fmt: skip
    for label, took, base, base_label in (
        (
            f"verify signatures ({staged.verify_threads} threads)",
            verify_s,
            bare_verify_s,
            "one libsodium check per record",
        ),
        ("verify signatures, CPU", verify_cpu, bare_verify_s, "the same"),
        ("decode Avro", decode_s, bare_decode_s, "fastavro schemaless_reader alone"),
        ("build column rows", build_s, None, ""),
        ("insert (sink)", insert_s, bare_insert_s, "bare client.insert of the same columns"),
    ):
        suffix = f" (baseline: {base_label})" if base_label else ""
        out.append(_row(f"{case}: stage alone, {label}{suffix}", took * per_row, "us/row", base and base * per_row))

    # the runner's path: the same records consumed from the local broker, alone and into the sink
    consumed, written = _through_broker(messages, sink_in("bench_sink_broker"), topics)
    out += [
        _row(f"{case}: consumed from the local broker and written, CPU a row", written[1] * per_row, "us/row",
             consumed[1] * per_row),
        _row(f"{case}: consumed from the local broker and written, wall a row", written[0] * per_row, "us/row",
             consumed[0] * per_row),
        _row(f"{case}:   consuming alone (the baseline above), CPU a row", consumed[1] * per_row, "us/row"),
    ]  # fmt: skip
    return out


def _write(sink: WarehouseSink, messages: list[Message]) -> tuple[float, float, int]:
    """(wall, CPU, rows) of writing ``messages`` one poll at a time."""

    def write_all() -> None:
        for start in range(0, len(messages), POLL):
            assert sink.write(messages[start : start + POLL]) or start + POLL < len(messages)

    wall, cpu = _timed(write_all)
    assert not sink.take_dead_letters()
    return wall, cpu, int(sum(sink.metrics.value("riskstream_sink_rows_total", table=t) for t in _TABLES))


def _through_broker(
    messages: list[Message], sink: WarehouseSink, topics: TopicNames
) -> tuple[tuple[float, float], tuple[float, float]]:
    """(wall, CPU) of consuming every message from a local broker, then of consuming and writing them."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        broker = start_broker(port, Path(tmp) / "broker.log")
        servers = f"127.0.0.1:{port}"
        try:
            wait_for_broker(servers)
            names = sorted({m.topic for m in messages})
            ensure_topics(servers, names, 4)
            producer = BatchProducer(servers)
            for m in messages:
                producer.send(m.topic, m.key, m.value, headers=list(m.headers))
            producer.flush()
            consumed = asyncio.run(_consume(servers, "bench-consume", names, len(messages), None))
            written = asyncio.run(_consume(servers, "bench-sink", names, len(messages), sink))
        finally:
            stop_process_group(broker.pid)
    assert not sink.take_dead_letters() and not sink.pending
    return consumed, written


async def _consume(
    servers: str, group: str, names: list[str], total: int, sink: WarehouseSink | None
) -> tuple[float, float]:
    """(wall, CPU) from the first record to the last (the group join is not timed), as the runner polls."""
    seen = 0
    wall = cpu = 0.0
    async with AsyncBatchConsumer(servers, group, names, max_records=POLL, timeout_ms=200) as consumer:
        while seen < total or (sink is not None and sink.pending):
            batch = await consumer.getmany()
            if batch and not seen:
                wall, cpu = time.perf_counter(), time.process_time()
            seen += len(batch)
            if sink is not None and (batch or sink.pending) and sink.write(batch):
                await consumer.commit()
    return time.perf_counter() - wall, time.process_time() - cpu


_TABLES = (
    "ensemble_alert_scores",
    "ensemble_cluster_scores",
    "miner_submissions",
    "submission_completions",
    "validation_results",
    "ensemble_batches",
    "miner_weights",
)


def _body(value: bytes | None) -> io.BytesIO:
    body = io.BytesIO(value or b"")
    body.seek(5)
    return body


def _signed_bytes(topics: TopicNames, m: Message) -> bytes:
    """The signature then the canonical bytes it covers, as libsodium's open takes them."""
    claim = claim_of(m.headers)
    purpose = output_purposes(topics).get(m.topic, "inbox")
    message = canonical_bytes(
        purpose, VALIDATOR, m.key, m.value, date=claim.date, batch_id=claim.batch_id, signed_at_ms=claim.signed_at_ms
    )
    return claim.signature + message


def _row(case: str, value: float, unit: str, baseline: float | None = None) -> dict[str, Any]:
    return {
        "component": "sink",
        "case": case,
        "value": round(value, 3 if value < 100 else 0),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 3),
        "ratio": None if not baseline else round(value / baseline, 3),
    }


if __name__ == "__main__":
    from bench.table import print_rows

    print_rows(run())
