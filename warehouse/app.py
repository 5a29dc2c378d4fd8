"""The sink's wiring point: the only place that opens ClickHouse, the consumer, the producer and the endpoint.

Consume every topic the warehouse stores, ``add`` each record, ``flush`` after each poll,
produce the dead letters, and commit offsets only after the rows and the dead letters are out.
In the embedded default the same process answers reads over its chDB path (``reads.py``).

    stop = asyncio.Event()
    await run_warehouse(WarehouseSettings(), stop)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import REGISTRY

from streams.codec import AvroCodec
from streams.deadletter import send_dead_letter
from streams.errors import ConfigError, KafkaError, WarehouseError
from streams.health import Health, announce, watch_broker, withdraw
from streams.kafka import BatchProducer, Message
from streams.kafka_readers import AsyncBatchConsumer
from streams.retention import apply_retention
from streams.schema_registry import registry_from_url
from streams.settings import StackSettings
from streams.warehouse_schema import connect, create_tables, embedded
from warehouse.metrics import SinkMetrics
from warehouse.reads import SinkEndpoint
from warehouse.settings import WarehouseSettings
from warehouse.sink import WarehouseSink

log = logging.getLogger(__name__)


def endpoint_address(settings: WarehouseSettings) -> tuple[str, int] | None:
    """Where the sink's HTTP endpoint listens: the read address over chDB, else the optional metrics port."""
    stack = settings.stack
    if embedded(stack):
        parts = urlsplit(stack.warehouse_reads_url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            msg = f"RISKSTREAM_WAREHOUSE_READS_URL must be http://host:port, not {stack.warehouse_reads_url!r}"
            raise ConfigError(msg)
        return parts.hostname, parts.port
    if settings.http_port is None:
        return None
    return settings.http_host, settings.http_port


def chdb_path(stack: StackSettings) -> str | None:
    return stack.clickhouse_url.removeprefix("chdb://") if embedded(stack) else None


class Warehouse:
    """The running sink: its client, sink, producer, endpoint and the state ``/health`` reports."""

    def __init__(self, settings: WarehouseSettings) -> None:
        self.settings = settings
        stack = settings.stack
        self.client: Any = connect(stack)
        self.sink = WarehouseSink(
            self.client,
            settings.database,
            stack.topics,
            AvroCodec(registry_from_url(stack.schema_registry_url)),
            validator_key=stack.validator_key,
            marker_timeout_s=settings.marker_timeout_s,
            metrics=SinkMetrics(),  # its own registry: several sinks may share a process in tests
        )
        self.producer = BatchProducer(stack.bootstrap_servers)
        self.dlq = stack.topics.dlq("warehouse")
        self.error: str | None = None
        self.started_at = time.time()
        self.state = Health("warehouse", settings.health_max_unreachable_s)
        self.state.checks.append(lambda: None if self.error is None else f"warehouse sink failing: {self.error}")
        self.state.details.append(self._details)
        address = endpoint_address(settings)
        self.endpoint = (
            None
            if address is None
            else SinkEndpoint(
                *address,
                chdb_path=chdb_path(stack),
                health=self.health,
                registries=(REGISTRY, self.sink.metrics.registry),  # process and dead letters, then the sink
                connections=settings.read_connections,
            )
        )

    def health(self) -> dict[str, Any]:
        return self.state.report()[1]

    def _details(self) -> dict[str, Any]:
        metrics = self.sink.metrics
        return {
            "error": self.error,
            "lag_seconds": round(metrics.value("riskstream_sink_lag_seconds"), 3),
            "last_flush": metrics.value("riskstream_sink_last_flush_timestamp_seconds") or None,
            "pending_batches": [
                {"network": n, "processing_date": d.isoformat(), "version": v}
                for n, d, v in self.sink.pending_markers()
            ],
        }

    def close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.stop()
        with contextlib.suppress(Exception):
            self.producer.flush(10)
        with contextlib.suppress(Exception):
            self.client.close()


def _flush(warehouse: Warehouse) -> bool:
    """Flush (blocking: runs in a worker thread), then produce the dead letters; True if safe to commit."""
    sink = warehouse.sink
    safe = sink.flush()
    dead = sink.take_dead_letters()
    try:
        for letter in dead:
            send_dead_letter(warehouse.producer, warehouse.dlq, letter)
        if dead:
            warehouse.producer.flush()
    except KafkaError:
        sink.keep_dead_letters(dead)  # sent again with the next flush; offsets are not committed meanwhile
        raise
    return safe


async def consume(warehouse: Warehouse, stop: asyncio.Event) -> None:
    """Consume every topic the warehouse stores until ``stop`` is set; commit only after the inserts."""
    settings, sink = warehouse.settings, warehouse.sink
    await asyncio.to_thread(sink.ensure_tables)
    consumer = AsyncBatchConsumer(
        settings.stack.bootstrap_servers,
        settings.group_id,
        pattern=sink.subscription_pattern(),
        session_timeout_ms=settings.stack.session_timeout_ms,
        max_records=settings.max_records,
        timeout_ms=200,
    )
    async with consumer:
        log.info("warehouse sink consuming %s into %s", sink.subscription_pattern(), sink.database)
        stopped = asyncio.ensure_future(stop.wait())
        try:
            messages: list[Message] = []
            while not stop.is_set():
                # getmany can wait long (a rebalance waits for the assignment): race it against stop
                polled = asyncio.ensure_future(consumer.getmany())
                await asyncio.wait({polled, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not polled.done():
                    polled.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await polled
                    break
                messages = polled.result()
                if not messages and not sink.pending:
                    continue
                if await _store_with_retries(warehouse, messages, stop):
                    await consumer.commit()
                    sink.metrics.commits.inc()
        finally:
            stopped.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopped


async def _store_with_retries(warehouse: Warehouse, messages: list[Message], stop: asyncio.Event) -> bool:
    """Store ``messages`` (retrying while ClickHouse or the broker fails: nothing is committed or lost)."""
    delay = 0.5
    added = False
    while True:
        try:
            if not added:
                # raises before adding anything while the validator's key is not known: retried whole
                await asyncio.to_thread(warehouse.sink.add_all, messages)
                added = True
            safe = await asyncio.to_thread(_flush, warehouse)  # a failed flush keeps its rows buffered
        except (WarehouseError, KafkaError) as exc:
            warehouse.error = str(exc)
            log.error("warehouse flush failed, retrying in %.1fs: %s", delay, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return False
            delay = min(delay * 2, warehouse.settings.retry_max_s)
            continue
        warehouse.error = None
        warehouse.state.progressed("warehouse flush")
        return safe


async def keep_window(settings: WarehouseSettings, client: Any, stop: asyncio.Event) -> None:
    """Apply the warehouse retention every ``retention_interval_s`` while the sink runs."""
    await asyncio.to_thread(create_tables, client, settings.database)  # the consumer may not have made them yet
    while not stop.is_set():
        try:
            today = dt.datetime.now(dt.UTC).date()
            await asyncio.to_thread(
                apply_retention,
                client,
                settings.database,
                keep_days=settings.retention_days,
                tau_days=settings.tau_days,
                today=today,
            )
        except WarehouseError as exc:
            log.warning("warehouse retention failed, next try in %.0fs: %s", settings.retention_interval_s, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.retention_interval_s)


async def run_warehouse(settings: WarehouseSettings, stop: asyncio.Event) -> None:
    """Open everything, serve the endpoint, consume until ``stop``; close everything."""
    await serve_warehouse(await asyncio.to_thread(Warehouse, settings), stop)


async def serve_warehouse(warehouse: Warehouse, stop: asyncio.Event) -> None:
    """Serve the endpoint and consume until ``stop``; then close ``warehouse``."""
    retention = None
    stack = warehouse.settings.stack
    watch = asyncio.ensure_future(watch_broker(warehouse.state, stack.bootstrap_servers))
    announced = None
    try:
        if warehouse.endpoint is not None:
            warehouse.endpoint.start()
            announced = announce(stack.home, "warehouse", f"http://127.0.0.1:{warehouse.endpoint.port}")
        if warehouse.settings.retention_days > 0:
            retention = asyncio.ensure_future(keep_window(warehouse.settings, warehouse.client, stop))
        await consume(warehouse, stop)
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        if announced is not None:
            withdraw(announced)
        if retention is not None:
            stop.set()
            await asyncio.wait({retention}, timeout=30)
        await asyncio.to_thread(warehouse.close)
