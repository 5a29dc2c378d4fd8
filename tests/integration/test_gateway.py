"""The gateway served for real over what the sink service stores from the broker: endpoints, errors, a replay."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sanic import Sanic
from sink_service import read_endpoint, running

from gateway.app import create_app, serve_in_loop
from gateway.settings import GatewaySettings
from simulation import as_messages, as_published, sample_date
from streams.codec import AvroCodec
from streams.kafka import BatchProducer
from streams.schema_registry import FileSchemaRegistry, HttpSchemaRegistry
from streams.settings import StackSettings
from streams.signing import VALIDATOR, Signer
from streams.stack import free_port
from streams.topics import TopicNames
from warehouse.settings import WarehouseSettings
from warehouse.sink import WarehouseSink

pytestmark = pytest.mark.integration

D1, D2 = dt.date(2026, 2, 27), dt.date(2026, 3, 2)
CODEC = AvroCodec(FileSchemaRegistry.default())
SIGNER = Signer(Ed25519PrivateKey.generate(), VALIDATOR)  # the validator's key: the sink stores what it signed
ENSEMBLE_KEYS = {
    "processing_date", "network", "aggregation_method", "total_miners", "version", "ensemble_scores", "pagination",
    "metadata",
}  # fmt: skip
ITEM_KEYS = {
    "ensemble_score", "confidence", "miner_count", "miner_agreement", "score_std", "rank", "top_contributors",
}  # fmt: skip
METADATA_KEYS = {
    "aggregated_at", "immediate_validation_complete", "ground_truth_validation_pending", "expected_ground_truth_date",
}  # fmt: skip


def _settings(stack: StackSettings, **overrides: Any) -> GatewaySettings:
    return GatewaySettings(
        stack=stack.model_copy(update={"validator_public_key": SIGNER.public_key}),
        database=f"g_{uuid.uuid4().hex[:12]}",
        port=free_port(),
        **overrides,
    )


def _sink_settings(settings: GatewaySettings, group_id: str, **overrides: Any) -> WarehouseSettings:
    return WarehouseSettings(stack=settings.stack, database=settings.database, group_id=group_id, **overrides)


def _publish(stack: StackSettings, records: list[tuple[str, str, bytes]]) -> None:
    producer = BatchProducer(stack.bootstrap_servers)
    for topic, key, value, headers in as_published(records, SIGNER, stack.topics):
        producer.send(topic, key, value, headers=headers)
    producer.flush()


async def _wait_for(client: httpx.AsyncClient, path: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        answer = await client.get(path)
        if answer.status_code == 200 and check(answer.json()):
            return answer.json()
        assert time.monotonic() < deadline, f"{path}: {answer.status_code} {answer.text[:300]}"
        await asyncio.sleep(0.3)


@contextlib.asynccontextmanager
async def serving(settings: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway on a real port inside the test's loop (stopped before the test returns)."""
    Sanic.test_mode = True  # several apps in one process: Sanic re-touches its methods once per app otherwise
    app = create_app(settings, name=f"gw_{uuid.uuid4().hex[:8]}")
    async with (
        serve_in_loop(app, "127.0.0.1", settings.port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", timeout=30) as client,
    ):
        yield client


async def test_every_endpoint_answers_and_a_replay_supersedes(
    warehouse_stack: StackSettings, group_id: str, topics: TopicNames
) -> None:
    settings = _settings(warehouse_stack)
    # the gateway starts first: it answers 503 until the sink's endpoint is up, then recovers by itself
    async with serving(settings) as client:
        assert (await client.get("/health")).status_code == 503
        async with running(_sink_settings(settings, group_id)):
            await _check_every_endpoint_and_replay(client, settings, topics)


async def _check_every_endpoint_and_replay(
    client: httpx.AsyncClient, settings: GatewaySettings, topics: TopicNames
) -> None:
    stack = settings.stack
    miners = ("miner-a", "miner-b", "miner-c")
    _publish(stack, sample_date(CODEC, topics, D1, alerts=400, clusters=30, miners=miners, ground_truth=True))
    _publish(stack, sample_date(CODEC, topics, D2, alerts=300, clusters=20, miners=miners, seed=2))
    dates = await _wait_for(client, "/dates/available", lambda a: len(a["dates"]) == 2)
    assert [d["processing_date"] for d in dates["dates"]] == [D2.isoformat(), D1.isoformat()]
    assert dates["dates"][1] | {"aggregated_at": None} == {
        "processing_date": D1.isoformat(), "version": 1, "alert_count": 400, "cluster_count": 30,
        "aggregated_at": None, "total_miners": 3, "status": "accepted", "reason": "",
    }  # fmt: skip
    assert (await client.get("/dates/latest")).json()["processing_date"] == D2.isoformat()

    # ensemble scores: documented shape, default page, ordering by alert id
    scores = (await client.get(f"/ensemble/scores/alerts/{D1}")).json()
    assert set(scores) == ENSEMBLE_KEYS
    assert scores["processing_date"] == D1.isoformat() and scores["network"] == "ethereum"
    assert scores["total_miners"] == 3 and scores["version"] == 1 and scores["aggregation_method"] == "weighted_mean"
    assert scores["pagination"] == {"limit": 100, "offset": 0, "total": 400}
    assert len(scores["ensemble_scores"]) == 100
    item = scores["ensemble_scores"][0]
    assert set(item) == ITEM_KEYS | {"alert_id"}
    assert set(item["top_contributors"][0]) == {"miner_id", "weight", "score"}
    ids = [i["alert_id"] for i in scores["ensemble_scores"]]
    assert ids == sorted(ids)
    metadata = scores["metadata"]
    assert set(metadata) >= METADATA_KEYS
    assert metadata["immediate_validation_complete"] is True
    assert metadata["ground_truth_validation_pending"] is False  # D1 carries ground truth
    assert metadata["expected_ground_truth_date"] == (D1 + dt.timedelta(days=settings.tau_days)).isoformat()
    latest_meta = (await client.get("/ensemble/scores/alerts/latest")).json()["metadata"]
    assert latest_meta["ground_truth_validation_pending"] is True

    # rankings of the newest date: ranks 1..100 in order
    rankings = (await client.get("/ensemble/rankings/alerts/latest")).json()
    assert rankings["processing_date"] == D2.isoformat()
    assert [i["rank"] for i in rankings["ensemble_scores"]] == list(range(1, 101))
    scores_desc = [i["ensemble_score"] for i in rankings["ensemble_scores"]]
    assert scores_desc == sorted(scores_desc, reverse=True)

    # clusters with filter, order and page
    clusters = (
        await client.get(
            f"/ensemble/scores/clusters/{D1}", params={"min_score": 0.2, "order": "score", "limit": 5, "offset": 1}
        )
    ).json()
    assert "ensemble_scores" in clusters, clusters
    got = [c["ensemble_score"] for c in clusters["ensemble_scores"]]
    assert got == sorted(got, reverse=True) and all(s >= 0.2 for s in got) and len(got) <= 5
    assert "cluster_id" in clusters["ensemble_scores"][0]
    assert 0 < clusters["pagination"]["total"] <= 30
    full = (await client.get(f"/ensemble/scores/alerts/{D1}", params={"limit": 10_000})).json()
    assert len(full["ensemble_scores"]) == 400 and len({i["alert_id"] for i in full["ensemble_scores"]}) == 400

    # submissions, validation, miners
    subs = (await client.get(f"/submissions/{D1}")).json()
    assert [m["miner_id"] for m in subs["miners"]] == list(miners)
    assert all(m["completed"] and m["alerts_received"] == 400 and m["clusters_received"] == 30 for m in subs["miners"])
    raw = (await client.get(f"/submissions/{D1}/miner-b", params={"limit": 7})).json()
    assert raw["pagination"]["total"] == 400 and [s["rank"] for s in raw["scores"]] == list(range(1, 8))
    assert raw["completion"]["alert_count"] == 400
    raw_clusters = (await client.get(f"/submissions/{D1}/miner-b", params={"kind": "cluster"})).json()
    assert raw_clusters["pagination"]["total"] == 30 and "cluster_id" in raw_clusters["scores"][0]
    validation = (await client.get(f"/validation/{D1}")).json()
    assert {(r["miner_id"], r["stage"]) for r in validation["results"]} == {
        (m, s) for m in (*miners, "ensemble") for s in ("immediate", "ground_truth")
    }
    one = (await client.get(f"/validation/{D2}/miner-a")).json()
    assert one["immediate"]["passed_integrity"] is True and one["ground_truth"] is None
    leaderboard = (await client.get("/miners/rankings")).json()
    assert [m["rank"] for m in leaderboard["miners"]] == [1, 2, 3]
    assert {m["miner_id"] for m in leaderboard["miners"]} == set(miners)
    assert leaderboard["through_date"] == D2.isoformat()
    assert all(m["active"] for m in leaderboard["miners"])  # every one was waited for by the newest round
    performance = (await client.get("/miners/miner-c/performance")).json()
    assert [h["processing_date"] for h in performance["history"]] == [D2.isoformat(), D1.isoformat()]
    assert performance["history"][0]["ground_truth_score"] is None
    assert performance["history"][1]["ground_truth_metrics"]["auc_roc"] == 0.9

    # service endpoints
    health = (await client.get("/health")).json()
    assert health["status"] == "ok" and health["warehouse"] == "ok"
    assert (await client.get("/version")).json()["api"] == "1"
    metrics = (await client.get("/metrics")).text
    assert "riskstream_gateway_request_seconds_bucket" in metrics and "riskstream_sink" not in metrics
    async with httpx.AsyncClient(base_url=settings.stack.warehouse_reads_url) as sink_http:
        sink_metrics = (await sink_http.get("/metrics")).text
    assert 'riskstream_sink_rows_total{table="ensemble_alert_scores"} 700.0' in sink_metrics
    spec = (await client.get("/openapi.json")).json()
    assert "/ensemble/rankings/alerts/{date}" in spec["paths"]
    docs = (await client.get("/docs")).text
    assert "SwaggerUIBundle" in docs and (await client.get("/docs/static/swagger-ui.css")).status_code == 200
    page = await client.get("/")
    assert page.status_code == 200, page.text
    assert "miner-a" in page.text and "<svg" in page.text and "auc_roc" in page.text

    # bad input: JSON errors, never a 500
    for path, status in (
        ("/ensemble/scores/alerts/2026-13-01", 400),
        ("/ensemble/scores/alerts/yesterday", 400),
        (f"/ensemble/scores/alerts/{D1}?limit=0", 400),
        (f"/ensemble/scores/alerts/{D1}?order=bogus", 400),
        (f"/ensemble/scores/alerts/{D1}?min_score=nan", 400),
        (f"/ensemble/scores/alerts/{D1}?network=Bad%20Net", 400),
        ("/ensemble/scores/alerts/2020-01-01", 404),
        ("/validation/2026-02-27/nobody", 404),
        ("/miners/Bad!/performance", 400),
        ("/submissions/2026-02-28", 404),
        ("/no/such/route", 404),
    ):
        answer = await client.get(path)
        assert answer.status_code == status, (path, answer.text)
        assert answer.json()["error"]["status"] == status and answer.json()["error"]["message"], path

    # replay D1: same records as version 2, then a version 3 with fewer alerts and other scores
    before = full["ensemble_scores"]
    _publish(
        stack, sample_date(CODEC, topics, D1, alerts=400, clusters=30, miners=miners, version=2, ground_truth=True)
    )
    await _wait_for(client, f"/ensemble/scores/alerts/{D1}?limit=10000", lambda a: a["version"] == 2)
    replayed = (await client.get(f"/ensemble/scores/alerts/{D1}", params={"limit": 10_000})).json()
    assert replayed["pagination"]["total"] == 400 and replayed["ensemble_scores"] == before
    _publish(stack, sample_date(CODEC, topics, D1, alerts=150, clusters=10, miners=miners[:2], version=3, seed=9))
    newest = await _wait_for(client, f"/ensemble/scores/alerts/{D1}?limit=10000", lambda a: a["version"] == 3)
    assert newest["pagination"]["total"] == 150 and newest["total_miners"] == 2
    assert len(newest["ensemble_scores"]) == 150
    assert (await client.get(f"/ensemble/scores/clusters/{D1}")).json()["pagination"]["total"] == 10
    other = (await client.get(f"/ensemble/scores/alerts/{D2}")).json()
    assert other["version"] == 1 and other["pagination"]["total"] == 300
    dates = (await client.get("/dates/available")).json()["dates"]
    assert [(d["processing_date"], d["version"]) for d in dates] == [(D2.isoformat(), 1), (D1.isoformat(), 3)]


async def test_cached_answers_move_on_when_the_served_version_changes_after_a_marker_timeout(
    warehouse_stack: StackSettings, group_id: str, topics: TopicNames
) -> None:
    """A version whose rows never all arrive is served after the marker timeout: the cached URL follows."""
    settings = _settings(warehouse_stack)
    url = f"/ensemble/scores/alerts/{D1}"
    async with serving(settings) as client, running(_sink_settings(settings, group_id, marker_timeout_s=3.0)):
        _publish(settings.stack, sample_date(CODEC, topics, D1, alerts=60, clusters=5, miners=("miner-a",)))
        await _wait_for(client, url, lambda a: a["version"] == 1)
        assert (await client.get(url)).json()["version"] == 1  # now cached
        second = sample_date(CODEC, topics, D1, alerts=60, clusters=5, miners=("miner-a",), version=2, seed=4)
        first_alert = next(i for i, r in enumerate(second) if r[0] == topics.ensemble_alerts)
        _publish(settings.stack, second[:first_alert] + second[first_alert + 1 :])  # one alert row never comes
        answer = await _wait_for(client, url, lambda a: a["version"] == 2, timeout=90)
        assert answer["pagination"]["total"] == 59
        junk = await client.get(url, params={"cache_buster": "1"})
        assert junk.status_code == 400 and "cache_buster" in junk.json()["error"]["message"]
        same = await client.get(url, params={"limit": "100", "offset": "0"})  # the default page, spelled out
        assert same.status_code == 200 and same.json() == answer


async def test_stock_confluent_client_decodes_ensemble_alerts_through_the_registry_api(
    warehouse_stack: StackSettings, topics: TopicNames
) -> None:
    stack_settings = warehouse_stack
    records = [r for r in sample_date(CODEC, topics, D2, alerts=40, clusters=0) if r[0] == topics.ensemble_alerts]
    _publish(stack_settings, records)
    settings = _settings(stack_settings)  # no sink: the registry API needs no warehouse
    async with serving(settings) as client:
        registry = f"http://127.0.0.1:{settings.port}"
        subjects = await client.get("/subjects")
        assert subjects.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
        assert "riskstream.EnsembleAlertScore-value" in subjects.json()
        assert (await client.get("/subjects/riskstream.EnsembleAlertScore-value/versions")).json() == [1]
        latest = (await client.get("/subjects/riskstream.EnsembleAlertScore-value/versions/latest")).json()
        assert (
            latest["id"] == 5
            and latest["version"] == 1
            and json.loads(latest["schema"])["name"] == "EnsembleAlertScore"
        )
        assert (
            json.loads((await client.get("/schemas/ids/5")).json()["schema"])
            == FileSchemaRegistry.default().by_id(5).schema
        )
        missing = await client.get("/schemas/ids/999")
        assert missing.status_code == 404 and missing.json()["error_code"] == 40403
        assert (await client.get("/subjects/nope-value/versions/1")).json()["error_code"] == 40401
        # our own HTTP registry client reads through the same API (production points it at a real registry)
        http_codec = AvroCodec(HttpSchemaRegistry(registry))
        via_http = await asyncio.to_thread(http_codec.decode, records[0][2])
        assert via_http.record == CODEC.decode(records[0][2]).record
        assert "riskstream.EnsembleAlertScore-value" in await asyncio.to_thread(http_codec.registry.subjects)

        example = Path(__file__).resolve().parents[2] / "gateway" / "examples" / "consume_ensemble_alerts.py"
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(example), "--bootstrap", stack_settings.bootstrap_servers, "--registry", registry,
            "--topic", topics.ensemble_alerts, "--group", f"example-{uuid.uuid4().hex[:6]}",
            "--max-messages", str(len(records)), "--idle-seconds", "30", "--session-timeout-ms", "6000",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, err.decode()
    decoded = [json.loads(line) for line in out.decode().splitlines()]
    expected = {r["alert_id"]: r for r in (CODEC.decode(v).record for _, _, v in records)}
    assert len(decoded) == len(records)
    for alert in decoded:
        want = expected[alert["alert_id"]]
        assert alert["processing_date"] == want["processing_date"].isoformat()
        assert alert["ensemble_score"] == want["ensemble_score"] and alert["rank"] == want["rank"]
        assert alert["top_contributors"] == want["top_contributors"]


async def test_property_based_run_against_the_openapi_spec_finds_no_server_error(
    warehouse_stack: StackSettings,
    clickhouse_path: Path,
    clickhouse: Any,
    topics: TopicNames,
    tmp_path: Path,
) -> None:
    settings = _settings(warehouse_stack)
    sink = WarehouseSink(clickhouse, settings.database, topics, CODEC, validator_key=SIGNER.public_key)
    sink.ensure_tables()
    for day, seed in ((D1, 1), (D2, 2)):
        records = sample_date(CODEC, topics, day, alerts=200, clusters=10, seed=seed, ground_truth=day == D1)
        assert sink.write(as_messages(as_published(records, SIGNER, topics)))
    with read_endpoint(clickhouse_path, warehouse_stack.warehouse_reads_url):
        async with serving(settings):
            process = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "schemathesis"), "run",
                f"http://127.0.0.1:{settings.port}/openapi.json",
                "--checks", "not_a_server_error,status_code_conformance,content_type_conformance",
                "--max-examples", "25", "--seed", "20260227", "--phases", "examples,coverage,fuzzing",
                "--generation-database", "none", "--no-color", "--request-timeout", "20",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(process.communicate(), 240)
    report = out.decode()
    assert process.returncode == 0, report[-4000:]
    assert "No issues found" in report or "passed" in report, report[-2000:]
