"""The warehouse sink service and its read endpoint inside a test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from warehouse.app import Warehouse, serve_warehouse
from warehouse.reads import SinkEndpoint
from warehouse.settings import WarehouseSettings


@contextlib.asynccontextmanager
async def running(settings: WarehouseSettings) -> AsyncIterator[Warehouse]:
    """The sink consuming and answering on its endpoint (stopped before the block ends)."""
    warehouse = await asyncio.to_thread(Warehouse, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(serve_warehouse(warehouse, stop))
    try:
        yield warehouse
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@contextlib.contextmanager
def read_endpoint(chdb_path: Path, reads_url: str) -> Iterator[SinkEndpoint]:
    """Only the read endpoint over ``chdb_path`` (for data a test wrote with the sink class directly)."""
    parts = urlsplit(reads_url)
    assert parts.hostname is not None and parts.port is not None
    endpoint = SinkEndpoint(parts.hostname, parts.port, chdb_path=str(chdb_path))
    endpoint.start()
    try:
        yield endpoint
    finally:
        endpoint.stop()
