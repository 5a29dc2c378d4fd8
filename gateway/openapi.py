"""The gateway's OpenAPI 3 document (hand-written: it is the REST contract) and an offline docs page."""

from __future__ import annotations

import html
from typing import Any

from gateway.params import orders

Schema = dict[str, Any]

_NUMBER: Schema = {"type": "number"}
_INT: Schema = {"type": "integer"}
_STR: Schema = {"type": "string"}
_DATE: Schema = {"type": "string", "format": "date"}
_TIME: Schema = {"type": "string", "format": "date-time"}
_BOOL: Schema = {"type": "boolean"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(**props: Schema) -> Schema:
    """An object whose properties are all required."""
    return {"type": "object", "properties": props, "required": list(props)}


def _optional(**props: Schema) -> Schema:
    return {"type": "object", "properties": props}


def _array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


_ERROR = _obj(error=_obj(status=_INT, message=_STR))
_PAGINATION = _obj(limit=_INT, offset=_INT, total=_INT)
_CONTRIBUTOR = _obj(miner_id=_STR, weight=_NUMBER, score=_NUMBER)


def _ensemble(id_field: str) -> Schema:
    item = _obj(
        **{id_field: _STR},
        ensemble_score=_NUMBER,
        confidence=_NUMBER,
        miner_count=_INT,
        miner_agreement=_NUMBER,
        score_std=_NUMBER,
        rank=_INT,
        top_contributors=_array(_CONTRIBUTOR),
    )
    metadata = _obj(
        aggregated_at=_TIME,
        immediate_validation_complete=_BOOL,
        ground_truth_validation_pending=_BOOL,
        expected_ground_truth_date=_DATE,
    )
    return _obj(
        processing_date=_DATE,
        network=_STR,
        aggregation_method=_STR,
        total_miners=_INT,
        version=_INT,
        ensemble_scores=_array(item),
        pagination=_PAGINATION,
        metadata=metadata,
    )


_VALIDATION = _obj(
    version=_INT,
    integrity_score=_NUMBER,
    behaviour_score=_NUMBER,
    ground_truth_score=_nullable(_NUMBER),
    immediate_score=_NUMBER,
    final_score=_nullable(_NUMBER),
    weight=_NUMBER,
    passed_integrity=_BOOL,
    reasons=_array(_STR),
    metrics={"type": "object", "additionalProperties": _NUMBER},
)
_COMPLETION = _optional(
    batch_id=_STR,
    alert_count=_INT,
    cluster_count=_INT,
    model_versions={"type": "object", "additionalProperties": _STR},
    checksum=_STR,
    latency_ms=_NUMBER,
    produced_at=_TIME,
)


def _param(name: str, where: str, schema: Schema, description: str, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": description,
    }


_NETWORK = _param("network", "query", {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,31}$"}, "default: ethereum")
_DAY = r"(20[0-9]{2}|21[0-4][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"  # the dates ClickHouse can hold
_DATE_OR_LATEST = _param("date", "path", {"type": "string", "pattern": f"^(latest|{_DAY})$"}, "YYYY-MM-DD or 'latest'")
_DATE_PATH = _param("date", "path", {"type": "string", "pattern": f"^{_DAY}$"}, "processing date, YYYY-MM-DD")
_MINER = _param("miner_id", "path", {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"}, "miner id")
_OFFSET = _param("offset", "query", {"type": "integer", "minimum": 0, "maximum": 10_000_000}, "rows to skip")
_MIN_SCORE = _param("min_score", "query", {"type": "number", "minimum": 0, "maximum": 1}, "lowest ensemble score")


def _limit(max_limit: int) -> Schema:
    return _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": max_limit}, "rows per page")


def _answers(schema: Schema, *errors: int) -> Schema:
    out: Schema = {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}
    reasons = {400: "bad date or parameter", 404: "unknown date or miner", 503: "warehouse unavailable"}
    for status in (*errors, 503):
        out[str(status)] = {"description": reasons[status], "content": {"application/json": {"schema": _ERROR}}}
    return out


def _get(summary: str, params: list[Schema], responses: Schema) -> Schema:
    return {"get": {"summary": summary, "parameters": params, "responses": responses}}


def _described(path: Schema, description: str) -> Schema:
    path["get"]["description"] = description
    return path


def _html_answers() -> Schema:
    out = _answers({"type": "object"}, 400, 404)
    out["200"] = {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}}
    return out


def build_spec(max_limit: int, version: str) -> Schema:
    """The OpenAPI document; ``max_limit`` is the configured page-size ceiling."""
    limit = _limit(max_limit)

    def ensemble(summary: str, id_field: str) -> Schema:
        order = _param("order", "query", {"type": "string", "enum": orders(id_field)}, "field[:asc|:desc]")
        return _get(
            summary,
            [_DATE_OR_LATEST, _NETWORK, limit, _OFFSET, _MIN_SCORE, order],
            _answers(_ensemble(id_field), 400, 404),
        )

    kind = _param("kind", "query", {"type": "string", "enum": ["alert", "cluster"]}, "alert (default) or cluster")
    days = _param("days", "query", {"type": "integer", "minimum": 1, "maximum": 3660}, "days of history")
    miner_row = _obj(
        miner_id=_STR,
        completed=_BOOL,
        alerts_received=_INT,
        clusters_received=_INT,
        mean_alert_score=_nullable(_NUMBER),
        last_received_at=_nullable(_TIME),
        completion=_nullable(_COMPLETION),
    )
    score_row = {"type": "object", "required": ["score", "rank", "model_version"]}
    ranking_row = _optional(
        rank=_INT, miner_id=_STR, days=_INT, mean_immediate_score=_NUMBER,
        mean_final_score=_nullable(_NUMBER), ground_truth_days=_INT, latest_weight=_NUMBER,
        active=_BOOL,  # waited for by the newest round: inactive miners (withdrawn, silent, missing rounds) are not
    )  # fmt: skip
    date_row = _obj(
        processing_date=_DATE,
        version=_INT,
        alert_count=_INT,
        cluster_count=_INT,
        aggregated_at=_TIME,
        total_miners=_INT,
    )
    paths: Schema = {
        "/ensemble/scores/alerts/{date}": ensemble("Ensemble alert scores of a date", "alert_id"),
        "/ensemble/rankings/alerts/{date}": ensemble("Ensemble alert ranking of a date (by rank)", "alert_id"),
        "/ensemble/scores/clusters/{date}": ensemble("Ensemble cluster scores of a date", "cluster_id"),
        "/submissions/{date}": _get(
            "Every miner's submission of a date",
            [_DATE_PATH, _NETWORK],
            _answers(_obj(processing_date=_DATE, network=_STR, miners=_array(miner_row)), 400, 404),
        ),
        "/submissions/{date}/{miner_id}": _get(
            "One miner's raw scores of a date",
            [_DATE_PATH, _MINER, _NETWORK, kind, limit, _OFFSET],
            _answers(
                _obj(
                    processing_date=_DATE,
                    network=_STR,
                    miner_id=_STR,
                    kind=_STR,
                    completion=_nullable(_COMPLETION),
                    scores=_array(score_row),
                    pagination=_PAGINATION,
                ),  # fmt: skip
                400,
                404,
            ),
        ),
        "/validation/{date}": _get(
            "Validation results of every miner for a date",
            [_DATE_PATH, _NETWORK],
            _answers(_obj(processing_date=_DATE, network=_STR, results=_array({"type": "object"})), 400, 404),
        ),
        "/validation/{date}/{miner_id}": _get(
            "One miner's validation for a date (immediate and ground truth)",
            [_DATE_PATH, _MINER, _NETWORK],
            _answers(
                _obj(
                    processing_date=_DATE,
                    network=_STR,
                    miner_id=_STR,
                    immediate=_nullable(_VALIDATION),
                    ground_truth=_nullable(_VALIDATION),
                ),  # fmt: skip
                400,
                404,
            ),
        ),
        "/miners/rankings": _described(
            _get(
                "Miner leaderboard over recent days",
                [_NETWORK, days],
                _answers(
                    _obj(network=_STR, window_days=_INT, through_date=_nullable(_DATE), miners=_array(ranking_row)),
                    400,
                ),
            ),
            "Each miner's page: /dashboard/miners/{miner_id}.",
        ),
        "/miners/{miner_id}/performance": _described(
            _get(
                "One miner's scores and weights per date",
                [_MINER, _NETWORK, days],
                _answers(_obj(network=_STR, miner_id=_STR, history=_array({"type": "object"})), 400, 404),
            ),
            "The same history drawn, with verdict reasons and ground-truth curves: /dashboard/miners/{miner_id}.",
        ),
        "/dashboard/miners/{miner_id}": _described(
            _get(
                "One miner's page (HTML): weight and final score over time, verdict reasons per date,"
                " reliability diagram and precision-recall curve of a labelled date",
                [
                    _MINER,
                    _NETWORK,
                    days,
                    _param("date", "query", {"type": "string", "format": "date"}, "labelled date of the curves"),
                ],
                _html_answers(),
            ),
            "Server-side SVG, no external assets. The curves are the points the validator stored with the"
            " miner's tier-3 metrics (reliability_<bin>_count|mean_score|positive_rate,"
            " pr_precision_at_recall_<level>), next to the ensemble's.",
        ),
        "/dates/available": _get(
            "Dates with a committed ensemble", [_NETWORK], _answers(_obj(network=_STR, dates=_array(date_row)), 400)
        ),
        "/dates/latest": _get("The newest date with a committed ensemble", [_NETWORK], _answers(date_row, 400, 404)),
        "/weights": _get(
            "Miner weights of the newest ensemble (or of ?date=), normalised like a Bittensor subnet emits them;"
            " each row's key is the public key the validator bound the miner to (its signed batch record)",
            [
                _param("date", "query", {"type": "string", "format": "date"}, "default: the newest ensembled date"),
                _NETWORK,
                _param(
                    "max_weight_limit",
                    "query",
                    {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1},
                    "the subnet's max_weight_limit (default 1)",
                ),
            ],
            _answers({"type": "object"}, 400, 404),
        ),
        "/health": _get("Liveness and warehouse reachability", [], _answers({"type": "object"})),
        "/version": _get("Service and API version", [], _answers(_obj(name=_STR, version=_STR, api=_STR))),
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of this gateway process (requests, latency, cache, process)",
                "parameters": [],
                "responses": {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}},
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "riskstream gateway",
            "version": version,
            "description": "Ensemble risk scores of blockchain AML alerts, miner submissions and validation.",
        },
        "paths": paths,
    }


DOCS_ASSETS = "/docs/static"


def docs_page(title: str) -> str:
    """Swagger UI over ``/openapi.json``; its files come from the swagger-ui-bundle package, served locally."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<link rel="stylesheet" href="{DOCS_ASSETS}/swagger-ui.css">
<link rel="icon" type="image/png" href="{DOCS_ASSETS}/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="{DOCS_ASSETS}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"
}});
</script></body></html>
"""
