"""On chDB: answers from a kept version ranking are byte-identical to SQL pages, from one query a request."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.errors import NotFoundError
from gateway.params import Order, Page
from gateway.queries import WarehouseReader, ensemble_page
from gateway.ranking import RankingCache
from gateway.routes import dumps
from simulation import as_messages, as_published, sample_date
from streams.codec import AvroCodec
from streams.schema_registry import FileSchemaRegistry
from streams.signing import VALIDATOR, Signer
from streams.topics import TopicNames
from warehouse.sink import WarehouseSink

pytestmark = pytest.mark.integration

D1, D2 = dt.date(2026, 4, 10), dt.date(2026, 4, 11)
CODEC = AvroCodec(FileSchemaRegistry.default())
SIGNER = Signer(Ed25519PrivateKey.generate(), VALIDATOR)  # the sink stores what the validator signed


class _CountingReader(WarehouseReader):
    def __init__(self, client: Any, database: str) -> None:
        super().__init__(client, database)
        self.queries = 0

    async def rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        self.queries += 1
        return await super().rows(sql, params)


@pytest.fixture
def reader(clickhouse: Any, topics: TopicNames) -> _CountingReader:
    database = f"r_{uuid.uuid4().hex[:12]}"
    sink = WarehouseSink(clickhouse, database, topics, CODEC, validator_key=SIGNER.public_key)
    sink.ensure_tables()
    records = [
        *sample_date(CODEC, topics, D1, alerts=700, clusters=30, miners=("m1", "m2", "m3"), ground_truth=True),
        *sample_date(CODEC, topics, D1, alerts=700, clusters=30, miners=("m1", "m2", "m3"), version=2, seed=4),
        *sample_date(CODEC, topics, D2, alerts=400, clusters=12, miners=("m1", "m2"), seed=2),
    ]
    sink.write(as_messages(as_published(records, SIGNER, topics)))
    return _CountingReader(clickhouse, database)


ORDERS = [Order(f, d) for f in ("rank", "score", "id") for d in (False, True)]
PAGES = [Page(100, 0), Page(7, 13), Page(1000, 0), Page(50, 680), Page(5, 5000)]
# every order with every page once, min_score alternating (a full product is slow on a loaded machine)
CASES = [(o, p, 0.42 * (i % 2)) for i, (o, p) in enumerate((o, p) for o in ORDERS for p in PAGES)]


def test_kept_rankings_answer_every_page_exactly_as_sql(reader: _CountingReader) -> None:
    rankings = RankingCache(64 << 20)

    async def both(kind: Any, day: dt.date | None, page: Page, order: Order, min_score: float) -> tuple[bytes, bytes]:
        args = (reader, kind, "ethereum", day, page, order, min_score)
        kept = await ensemble_page(*args, tau_days=7, rankings=rankings, encode=dumps)
        plain = await ensemble_page(*args, tau_days=7)
        return dumps(kept), dumps(plain)

    async def main() -> int:
        compared = 0
        for kind in ("alert", "cluster"):
            for day in (D1, None) if kind == "alert" else (D2,):
                for order, page, min_score in CASES[:: 2 if kind == "alert" else 5]:
                    kept, plain = await both(kind, day, page, order, min_score)
                    assert kept == plain, (kind, day, order, page, min_score)
                    compared += 1
        return compared

    assert asyncio.run(main()) == 2 * len(CASES[::2]) + len(CASES[::5])
    assert rankings.loads == 3  # alerts of D1 (version 2) and D2 (latest), clusters of D2: each read once


def test_a_kept_version_answers_from_one_query_and_a_newer_version_replaces_it(
    reader: _CountingReader, clickhouse: Any, topics: TopicNames
) -> None:
    rankings = RankingCache(64 << 20)

    async def page(day: dt.date | None = D1) -> dict[str, Any]:
        return await ensemble_page(
            reader, "alert", "ethereum", day, Page(100, 0), Order("rank", False), 0.0, tau_days=7, rankings=rankings
        )

    first = asyncio.run(page())
    before = reader.queries
    again = asyncio.run(page())
    assert reader.queries - before == 1 and dumps(again) == dumps(first) and first["version"] == 2
    assert [r["rank"] for r in orjson_rows(again)] == list(range(1, 101))

    sink = WarehouseSink(clickhouse, reader.db, topics, CODEC, validator_key=SIGNER.public_key)
    replay = sample_date(CODEC, topics, D1, alerts=700, clusters=30, miners=("m1", "m2", "m3"), version=3, seed=9)
    sink.write(as_messages(as_published(replay, SIGNER, topics)))
    newer = asyncio.run(page())
    assert newer["version"] == 3 and dumps(newer) != dumps(first)
    with pytest.raises(NotFoundError):
        asyncio.run(page(dt.date(2020, 1, 1)))


def orjson_rows(answer: dict[str, Any]) -> list[dict[str, Any]]:
    import orjson

    return list(orjson.loads(dumps(answer))["ensemble_scores"])
