"""The schema registry's read API (Confluent REST shapes) served from the file-backed registry.

Stock Avro clients (confluent-kafka's ``SchemaRegistryClient`` + ``AvroDeserializer``, ``kcat -r``)
point their registry URL at the gateway and decode our topics without any riskstream code.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from streams.schema_registry import FileSchemaRegistry, RegisteredSchema

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
VERSION = 1  # one version per subject: the .avsc files evolve only by adding defaulted fields under new ids


def _answer(body: Any, status: int = 200) -> HTTPResponse:
    return raw(orjson.dumps(body), status=status, content_type=CONTENT_TYPE)


def _error(code: int, message: str) -> HTTPResponse:
    return _answer({"error_code": code, "message": message}, status=code // 100)


def _subject(registry: FileSchemaRegistry, subject: str) -> RegisteredSchema | None:
    return next((s for s in registry.all() if s.subject == subject), None)


def schema_registry_blueprint(registry: FileSchemaRegistry) -> Blueprint:
    bp = Blueprint("schema_registry")
    texts = {s.schema_id: json.dumps(s.schema, separators=(",", ":")) for s in registry.all()}

    @bp.get("/schemas/ids/<schema_id:int>")
    async def schema_by_id(request: Request, schema_id: int) -> HTTPResponse:
        if schema_id not in texts:
            return _error(40403, f"Schema {schema_id} not found")
        return _answer({"schema": texts[schema_id]})

    @bp.get("/schemas/ids/<schema_id:int>/subjects")
    async def subjects_of_id(request: Request, schema_id: int) -> HTTPResponse:
        if schema_id not in texts:
            return _error(40403, f"Schema {schema_id} not found")
        return _answer([registry.by_id(schema_id).subject])

    @bp.get("/subjects")
    async def subjects(request: Request) -> HTTPResponse:
        return _answer(registry.subjects())

    @bp.get("/subjects/<subject:str>/versions")
    async def versions(request: Request, subject: str) -> HTTPResponse:
        if _subject(registry, subject) is None:
            return _error(40401, f"Subject '{subject}' not found.")
        return _answer([VERSION])

    @bp.get("/subjects/<subject:str>/versions/<version:str>")
    async def version(request: Request, subject: str, version: str) -> HTTPResponse:
        found = _subject(registry, subject)
        if found is None:
            return _error(40401, f"Subject '{subject}' not found.")
        if version not in ("latest", "-1", str(VERSION)):
            return _error(40402, f"Version {version} not found.")
        return _answer(
            {"subject": subject, "version": VERSION, "id": found.schema_id, "schema": texts[found.schema_id]}
        )

    return bp
