"""The schema registry read API in Confluent's REST shapes, on a bare app (no warehouse)."""

from __future__ import annotations

import json

from sanic import Sanic
from sanic_testing.testing import SanicASGITestClient

from gateway.schema_registry_api import CONTENT_TYPE, schema_registry_blueprint
from streams.schema_registry import FileSchemaRegistry

REGISTRY = FileSchemaRegistry.default()


def _client(name: str) -> SanicASGITestClient:
    app = Sanic(name)
    app.config.AUTO_EXTEND = False
    app.blueprint(schema_registry_blueprint(REGISTRY))
    return SanicASGITestClient(app)


async def test_schemas_and_subjects() -> None:
    client = _client("registry_ok")
    _, by_id = await client.get("/schemas/ids/5")
    assert by_id.status == 200 and by_id.headers["content-type"] == CONTENT_TYPE
    assert json.loads(by_id.json["schema"]) == REGISTRY.by_id(5).schema
    _, subjects = await client.get("/subjects")
    assert subjects.json == REGISTRY.subjects()
    _, versions = await client.get("/subjects/riskstream.EnsembleBatch-value/versions")
    assert versions.json == [1]
    for version in ("1", "latest", "-1"):
        _, found = await client.get(f"/subjects/riskstream.EnsembleBatch-value/versions/{version}")
        assert found.json["id"] == 7 and found.json["subject"] == "riskstream.EnsembleBatch-value"
        assert json.loads(found.json["schema"])["name"] == "EnsembleBatch"
    _, subjects_of = await client.get("/schemas/ids/7/subjects")
    assert subjects_of.json == ["riskstream.EnsembleBatch-value"]


async def test_unknown_ids_subjects_and_versions() -> None:
    client = _client("registry_missing")
    _, missing = await client.get("/schemas/ids/404")
    assert missing.status == 404 and missing.json == {"error_code": 40403, "message": "Schema 404 not found"}
    _, subject = await client.get("/subjects/nope-value/versions")
    assert subject.status == 404 and subject.json["error_code"] == 40401
    _, version = await client.get("/subjects/riskstream.EnsembleBatch-value/versions/2")
    assert version.status == 404 and version.json["error_code"] == 40402
