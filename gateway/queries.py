"""Every read the gateway makes: parameterised SQL over the warehouse tables, shaped into answers.

reader = WarehouseReader(client, "riskstream")
answer = await ensemble_page(reader, "alert", "ethereum", None, page, order, 0.0, tau_days=7)
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any, Literal

import orjson

from gateway.errors import GatewayError, NotFoundError
from gateway.params import Order, Page
from gateway.ranking import RankingCache, VersionRanking
from streams.warehouse_schema import check_database

Kind = Literal["alert", "cluster"]
Row = dict[str, Any]
_ENSEMBLE_COLUMNS = "ensemble_score, confidence, miner_count, miner_agreement, score_std, rank, top_contributors"


class WarehouseUnavailableError(GatewayError):
    status = 503


class WarehouseReader:
    """Runs read queries in worker threads (chDB and HTTP calls block) with bound parameters.

    reader = WarehouseReader(client, "riskstream")
    rows = await reader.rows("SELECT 1 AS one", {})
    """

    def __init__(self, client: Any, database: str) -> None:
        self.client = client
        self.db = check_database(database)

    def _query(self, sql: str, params: dict[str, Any]) -> list[Row]:
        try:
            return list(self.client.query(sql.replace("{db}", self.db), parameters=params).named_results())
        except Exception as exc:  # clickhouse-connect raises many kinds; the caller answers 503
            msg = f"the warehouse cannot answer: {type(exc).__name__}: {str(exc)[:300]}"
            raise WarehouseUnavailableError(msg) from exc

    async def rows(self, sql: str, params: dict[str, Any]) -> list[Row]:
        return await asyncio.to_thread(self._query, sql, params)


def _where_date(date: dt.date | None) -> str:
    return "" if date is None else " AND processing_date = {date:Date}"


async def committed_batch(reader: WarehouseReader, network: str, date: dt.date | None) -> Row:
    """The newest committed ensemble version of ``date`` (or of the newest date); 404 if none."""
    sql = (
        "SELECT processing_date, version, window_days, batch_id, aggregation_method, trigger, alert_count,"  # noqa: S608
        " cluster_count, expected_miners, miners, miner_keys, aggregated_at FROM {db}.ensemble_batches FINAL"
        f" WHERE network = {{network:String}} AND status = 'accepted'{_where_date(date)}"
        " ORDER BY processing_date DESC, version DESC LIMIT 1"
    )
    found = await reader.rows(sql, {"network": network, "date": date})
    if not found:
        what = "any date" if date is None else date.isoformat()
        msg = f"no ensemble for {what} on network {network!r}"
        raise NotFoundError(msg)
    return found[0]


def _order_sql(order: Order, id_column: str) -> str:
    direction = "DESC" if order.descending else "ASC"
    if order.field == "score":
        return f"ensemble_score {direction}, {id_column} ASC"
    if order.field == "rank":
        return f"rank {direction}, {id_column} ASC"
    return f"{id_column} {direction}"  # order.field == "id"


_BATCH_COLUMNS = (
    "processing_date, version, window_days, batch_id, aggregation_method, trigger, alert_count, cluster_count,"
    " expected_miners, miners, aggregated_at"
)


async def batch_status(reader: WarehouseReader, network: str, date: dt.date | None) -> Row:
    """In one query: the committed batch (as ``committed_batch``) and its validation status; 404 if none."""
    scope = (
        " AND processing_date = {date:Date}"
        if date is not None
        else " AND processing_date = (SELECT max(processing_date) FROM {db}.ensemble_batches"
        " WHERE network = {network:String} AND status = 'accepted')"
    )
    sql = (
        f"SELECT b.*, v.immediate AS immediate, v.ground_truth AS ground_truth FROM (SELECT {_BATCH_COLUMNS}"  # noqa: S608 fixed clauses
        f" FROM {{db}}.ensemble_batches FINAL WHERE network = {{network:String}} AND status = 'accepted'{scope}"
        " ORDER BY processing_date DESC, version DESC LIMIT 1) AS b"
        " LEFT JOIN (SELECT processing_date, groupUniqArrayIf(miner_id, stage = 'immediate') AS immediate,"
        " countIf(stage = 'ground_truth') AS ground_truth FROM {db}.validation_results FINAL"
        f" WHERE network = {{network:String}}{scope} GROUP BY processing_date) AS v"
        " ON b.processing_date = v.processing_date"
    )
    found = await reader.rows(sql, {"network": network, "date": date})
    if not found:
        what = "any date" if date is None else date.isoformat()
        msg = f"no ensemble for {what} on network {network!r}"
        raise NotFoundError(msg)
    return found[0]


def _answer_row(r: Row, id_column: str) -> Row:
    return {
        id_column: r[id_column],
        "ensemble_score": r["ensemble_score"],
        "confidence": r["confidence"],
        "miner_count": r["miner_count"],
        "miner_agreement": r["miner_agreement"],
        "score_std": r["score_std"],
        "rank": r["rank"],
        "top_contributors": r["top_contributors"],
    }


async def _version_ranking(
    reader: WarehouseReader, table: str, id_column: str, params: dict[str, Any], encode: Callable[[Any], bytes]
) -> VersionRanking:
    rows = await reader.rows(
        f"SELECT {id_column}, {_ENSEMBLE_COLUMNS} FROM {table} FINAL"  # noqa: S608 fixed names only
        " WHERE network = {network:String} AND processing_date = {date:Date} AND version = {version:UInt32}"
        f" ORDER BY {id_column} ASC",
        params,
    )
    return await asyncio.to_thread(VersionRanking.of, [_answer_row(r, id_column) for r in rows], encode)


async def ensemble_page(
    reader: WarehouseReader,
    kind: Kind,
    network: str,
    date: dt.date | None,
    page: Page,
    order: Order,
    min_score: float,
    *,
    tau_days: int,
    rankings: RankingCache | None = None,
    encode: Callable[[Any], bytes] = orjson.dumps,
    stamp: int | None = None,
) -> Row:
    """One page of a date's ensemble scores in the documented response shape.

    One query (batch and validation status) when the version's ranking is kept in ``rankings``,
    none while the warehouse ``stamp`` is unchanged; otherwise a second one reads the page.
    """
    if rankings is not None:
        batch = await rankings.status((network, date), stamp, lambda: batch_status(reader, network, date))
    else:
        batch = await batch_status(reader, network, date)
    day: dt.date = batch["processing_date"]
    immediate, ground_truth = set(batch["immediate"]), int(batch["ground_truth"])
    id_column = f"{kind}_id"
    params = {
        "network": network,
        "date": day,
        "version": batch["version"],
        "min_score": min_score,
        "limit": page.limit,
        "offset": page.offset,
    }
    table = "{db}.ensemble_alert_scores" if kind == "alert" else "{db}.ensemble_cluster_scores"
    ranking = None
    if rankings is not None:
        expected = int(batch["alert_count"] if kind == "alert" else batch["cluster_count"])
        ranking = await rankings.get(
            (kind, network, day, int(batch["version"])),
            expected,
            lambda: _version_ranking(reader, table, id_column, params, encode),
        )
    scores: list[Any]
    if ranking is not None:
        scores, total = ranking.page(order, min_score, page)
    else:
        scores, total = await _page_from_sql(reader, table, id_column, params, order)
    miners = [m["miner_id"] for m in batch["miners"]]
    return {
        "processing_date": day,
        "network": network,
        "aggregation_method": batch["aggregation_method"],
        "total_miners": len(miners),
        "version": batch["version"],
        "ensemble_scores": scores,
        "pagination": {"limit": page.limit, "offset": page.offset, "total": total},
        "metadata": {
            "aggregated_at": batch["aggregated_at"],
            "immediate_validation_complete": bool(miners) and set(miners) <= immediate,
            "ground_truth_validation_pending": ground_truth == 0,
            "expected_ground_truth_date": day + dt.timedelta(days=tau_days),
            "trigger": batch["trigger"],
            "alert_count": batch["alert_count"],
            "cluster_count": batch["cluster_count"],
        },
    }


async def _page_from_sql(
    reader: WarehouseReader, table: str, id_column: str, params: dict[str, Any], order: Order
) -> tuple[list[Any], int]:
    where = (
        " WHERE network = {network:String} AND processing_date = {date:Date} AND version = {version:UInt32}"
        " AND ensemble_score >= {min_score:Float64}"
    )
    rows = await reader.rows(
        f"SELECT {id_column}, {_ENSEMBLE_COLUMNS}, count() OVER () AS total FROM {table} FINAL{where}"  # noqa: S608 fixed names only
        f" ORDER BY {_order_sql(order, id_column)} LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}",
        params,
    )
    if rows:
        return [_answer_row(r, id_column) for r in rows], int(rows[0]["total"])
    counted = await reader.rows(f"SELECT count() AS total FROM {table} FINAL{where}", params)  # noqa: S608
    return [], int(counted[0]["total"])


async def submissions_of_date(reader: WarehouseReader, network: str, date: dt.date) -> Row:
    params = {"network": network, "date": date}
    completions, received = await asyncio.gather(
        reader.rows(
            "SELECT miner_id, batch_id, alert_count, cluster_count, alert_chunks, cluster_chunks, model_versions,"
            " checksum, latency_ms, produced_at FROM {db}.submission_completions FINAL"
            " WHERE network = {network:String} AND processing_date = {date:Date} ORDER BY miner_id",
            params,
        ),
        reader.rows(
            "SELECT miner_id, countIf(entity_type = 'alert') AS alerts_received,"
            " countIf(entity_type = 'cluster') AS clusters_received,"
            " avgIf(score, entity_type = 'alert') AS mean_alert_score, max(produced_at) AS last_received_at"
            " FROM {db}.miner_submissions FINAL"
            " WHERE network = {network:String} AND processing_date = {date:Date} GROUP BY miner_id",
            params,
        ),
    )
    if not completions and not received:
        msg = f"no submissions for {date} on network {network!r}"
        raise NotFoundError(msg)
    done = {r["miner_id"]: r for r in completions}
    counts = {r["miner_id"]: r for r in received}
    miners = []
    for miner_id in sorted(done.keys() | counts.keys()):
        got = counts.get(miner_id, {})
        miners.append(
            {
                "miner_id": miner_id,
                "completed": miner_id in done,
                "alerts_received": int(got.get("alerts_received", 0)),
                "clusters_received": int(got.get("clusters_received", 0)),
                "mean_alert_score": _finite(got.get("mean_alert_score")),
                "last_received_at": got.get("last_received_at"),
                "completion": _without(done.get(miner_id), "miner_id"),
            }
        )
    return {"processing_date": date, "network": network, "miners": miners}


async def submission_of_miner(
    reader: WarehouseReader, network: str, date: dt.date, miner_id: str, kind: Kind, page: Page
) -> Row:
    params = {"network": network, "date": date, "miner": miner_id, "kind": kind}
    params |= {"limit": page.limit, "offset": page.offset}
    scope = (
        " WHERE network = {network:String} AND processing_date = {date:Date} AND miner_id = {miner:String}"
        " AND entity_type = {kind:String}"
    )
    rows, completion = await asyncio.gather(
        reader.rows(
            "SELECT entity_id, score, rank, model_version, count() OVER () AS total"  # noqa: S608 fixed clauses
            f" FROM {{db}}.miner_submissions FINAL{scope}"
            " ORDER BY rank ASC, entity_id ASC LIMIT {limit:UInt32} OFFSET {offset:UInt32}",
            params,
        ),
        reader.rows(
            "SELECT batch_id, alert_count, cluster_count, alert_chunks, cluster_chunks, model_versions, checksum,"
            " latency_ms, produced_at FROM {db}.submission_completions FINAL WHERE network = {network:String}"
            " AND processing_date = {date:Date} AND miner_id = {miner:String}",
            params,
        ),
    )
    if rows:
        total = int(rows[0]["total"])
    else:
        counted = await reader.rows("SELECT count() AS total FROM {db}.miner_submissions FINAL" + scope, params)  # noqa: S608
        total = int(counted[0]["total"])
    if not total and not completion:
        msg = f"no submission of miner {miner_id!r} for {date} on network {network!r}"
        raise NotFoundError(msg)
    return {
        "processing_date": date,
        "network": network,
        "miner_id": miner_id,
        "kind": kind,
        "completion": completion[0] if completion else None,
        "scores": [
            {f"{kind}_id": r["entity_id"], "score": r["score"], "rank": r["rank"], "model_version": r["model_version"]}
            for r in rows
        ],
        "pagination": {"limit": page.limit, "offset": page.offset, "total": total},
    }


_VALIDATION_COLUMNS = (
    "miner_id, stage, version, integrity_score, behaviour_score, ground_truth_score, immediate_score, final_score,"
    " weight, passed_integrity, reasons, metrics"
)


async def validation_of_date(reader: WarehouseReader, network: str, date: dt.date) -> Row:
    rows = await reader.rows(
        f"SELECT {_VALIDATION_COLUMNS} FROM {{db}}.validation_results FINAL"  # noqa: S608 fixed names only
        " WHERE network = {network:String} AND processing_date = {date:Date} ORDER BY miner_id, stage",
        {"network": network, "date": date},
    )
    if not rows:
        msg = f"no validation results for {date} on network {network!r}"
        raise NotFoundError(msg)
    return {"processing_date": date, "network": network, "results": [_clean(r) for r in rows]}


async def validation_of_miner(reader: WarehouseReader, network: str, date: dt.date, miner_id: str) -> Row:
    rows = await reader.rows(
        f"SELECT {_VALIDATION_COLUMNS} FROM {{db}}.validation_results FINAL"  # noqa: S608 fixed names only
        " WHERE network = {network:String} AND processing_date = {date:Date} AND miner_id = {miner:String}",
        {"network": network, "date": date, "miner": miner_id},
    )
    if not rows:
        msg = f"no validation of miner {miner_id!r} for {date} on network {network!r}"
        raise NotFoundError(msg)
    stages = {r["stage"]: _without(_clean(r), "miner_id", "stage") for r in rows}
    return {
        "processing_date": date,
        "network": network,
        "miner_id": miner_id,
        "immediate": stages.get("immediate"),
        "ground_truth": stages.get("ground_truth"),
    }


async def miner_rankings(reader: WarehouseReader, network: str, days: int) -> Row:
    """Leaderboard over the ``days`` up to the newest validated date: ground truth first, then immediate."""
    rows = await reader.rows(
        "WITH (SELECT max(processing_date) FROM {db}.validation_results WHERE network = {network:String}) AS newest"
        " SELECT miner_id, count() AS days, avg(immediate_score) AS mean_immediate_score,"
        " avgIf(final_score, has_ground_truth) AS mean_final_score, countIf(has_ground_truth) AS ground_truth_days,"
        " argMax(weight, processing_date) AS latest_weight, max(processing_date) AS latest_date,"
        " countIf(NOT passed_integrity) AS failed_integrity_days, any(newest) AS through"
        " FROM {db}.miner_performance WHERE network = {network:String} AND miner_id != 'ensemble'"
        " AND processing_date > newest - {days:UInt32} GROUP BY miner_id"
        " ORDER BY ground_truth_days > 0 DESC, mean_final_score DESC, mean_immediate_score DESC, miner_id ASC",
        {"network": network, "days": days},
    )
    newest = rows[0]["through"] if rows else None
    # active: waited for by the newest round (validator.roster: not withdrawn, beating, not missing rounds)
    latest = await reader.rows(
        "SELECT expected_miners FROM {db}.ensemble_batches FINAL WHERE network = {network:String}"
        " ORDER BY processing_date DESC, version DESC LIMIT 1",
        {"network": network},
    )
    active = set(latest[0]["expected_miners"]) if latest else set()
    return {
        "network": network,
        "window_days": days,
        "through_date": newest,
        "miners": [
            {"rank": i, **{k: v for k, v in _clean(r).items() if k != "through"}, "active": r["miner_id"] in active}
            for i, r in enumerate(rows, start=1)
        ],
    }


async def miner_performance(reader: WarehouseReader, network: str, miner_id: str, days: int) -> Row:
    rows = await reader.rows(
        "SELECT processing_date, result_version AS version, immediate_score, integrity_score, behaviour_score,"
        " ground_truth_score, final_score, weight, passed_integrity, has_ground_truth, ground_truth_metrics"
        " FROM {db}.miner_performance WHERE network = {network:String} AND miner_id = {miner:String}"
        " ORDER BY processing_date DESC LIMIT {days:UInt32}",
        {"network": network, "miner": miner_id, "days": days},
    )
    if not rows:
        msg = f"no performance records of miner {miner_id!r} on network {network!r}"
        raise NotFoundError(msg)
    history = []
    for r in rows:
        item = _clean(r)
        if not r["has_ground_truth"]:
            item["ground_truth_score"] = item["final_score"] = item["ground_truth_metrics"] = None
        history.append(item)
    return {"network": network, "miner_id": miner_id, "history": history}


async def available_dates(reader: WarehouseReader, network: str) -> list[Row]:
    return await reader.rows(
        "SELECT processing_date, latest AS version, alert_count, cluster_count, aggregated_at, total_miners,"
        " status, reason FROM ("
        " SELECT processing_date, max(version) AS latest, argMax(alert_count, version) AS alert_count,"
        " argMax(status, version) AS status, argMax(reason, version) AS reason,"
        " argMax(cluster_count, version) AS cluster_count, argMax(aggregated_at, version) AS aggregated_at,"
        " argMax(length(miners), version) AS total_miners FROM {db}.ensemble_batches FINAL"
        " WHERE network = {network:String} GROUP BY processing_date) ORDER BY processing_date DESC",
        {"network": network},
    )


async def score_histogram(reader: WarehouseReader, network: str, buckets: int = 20) -> Row | None:
    """Ensemble score counts per bucket of width 1/buckets for the newest date (for the dashboard)."""
    try:
        batch = await committed_batch(reader, network, None)
    except NotFoundError:
        return None
    rows = await reader.rows(
        "SELECT least(toUInt32(floor(ensemble_score * {b:UInt32})), {b:UInt32} - 1) AS bucket, count() AS n"
        " FROM {db}.ensemble_alert_scores FINAL WHERE network = {network:String} AND processing_date = {date:Date}"
        " AND version = {version:UInt32} GROUP BY bucket ORDER BY bucket",
        {"network": network, "date": batch["processing_date"], "version": batch["version"], "b": buckets},
    )
    counts = [0] * buckets
    for r in rows:
        counts[int(r["bucket"])] = int(r["n"])
    return {"processing_date": batch["processing_date"], "version": batch["version"], "counts": counts}


async def ping(reader: WarehouseReader) -> None:
    await reader.rows("SELECT 1 AS one", {})


def _finite(value: Any) -> Any:
    """NaN (an average of nothing) is not JSON: answer null."""
    return None if isinstance(value, float) and value != value else value


def _clean(row: Row) -> Row:
    return {k: _finite(v) for k, v in row.items()}


def _without(row: Row | None, *keys: str) -> Row | None:
    return None if row is None else {k: v for k, v in row.items() if k not in keys}


async def ground_truth_by_miner(reader: WarehouseReader, network: str) -> list[Row]:
    """Each miner's ground-truth metrics (AUC, Brier, calibration...) of its newest labelled date."""
    rows = await reader.rows(
        "SELECT miner_id, max(processing_date) AS labelled_date,"
        " argMax(ground_truth_metrics, processing_date) AS metrics FROM {db}.miner_performance"
        " WHERE network = {network:String} AND has_ground_truth GROUP BY miner_id ORDER BY miner_id",
        {"network": network},
    )
    return [{**r, "metrics": _clean(r["metrics"])} for r in rows]


async def miner_verdicts(reader: WarehouseReader, network: str, miner_id: str, since: dt.date) -> list[Row]:
    """Each verdict of one miner from ``since`` on (immediate and ground truth), newest date first."""
    rows = await reader.rows(
        "SELECT processing_date, stage, version, weight, passed_integrity, immediate_score, final_score, reasons"
        " FROM {db}.validation_results FINAL WHERE network = {network:String} AND miner_id = {miner:String}"
        " AND processing_date >= {since:Date} ORDER BY processing_date DESC, stage DESC",
        {"network": network, "miner": miner_id, "since": since},
    )
    return [_clean(r) for r in rows]
