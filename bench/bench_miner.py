"""Miner benchmarks: featurise+score one big batch, and train the three models on 30 days.

Each figure sits next to a baseline measured in the same run on the same data:
    .venv/bin/python -m bench.bench_miner
"""

from __future__ import annotations

import datetime as dt
import io
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xgboost as xgb

from miner.features import build_alert_features, build_cluster_features
from miner.model_store import ModelStore
from miner.profiles import get_profile
from miner.records import submission_records
from miner.scoring import ScoringModels, score_with_models
from miner.training import labelled_dates, train_models
from streams.batch import MANIFEST, read_batch, snapshot_key
from streams.codec import AvroCodec
from streams.objectstore import FileObjectStore
from streams.schema_registry import FileSchemaRegistry
from streams.topics import TopicNames

NETWORK = "ethereum"
WINDOW = 7
FIRST = dt.date(2026, 1, 1)
TRAIN_DAYS = 30
TRAIN_SIZE = {"alerts": 10_000, "addresses": 20_000, "flows": 100_000, "clusters": 300}
SCORE_SIZE = {"alerts": 10_000, "addresses": 50_000, "flows": 1_000_000, "clusters": 300}


class _NoEvents:
    """The publisher's producer, for a benchmark that needs the objects but no broker."""

    def send(self, topic: str, key: Any, value: Any, headers: Any = None) -> None:
        return None

    def flush(self, timeout: float = 60.0) -> None:
        return None


def _row(case: str, value: float, unit: str, baseline: float | None) -> dict[str, Any]:
    return {
        "component": "miner",
        "case": case,
        "value": round(value, 3),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 3),
        "ratio": None if not baseline else round(value / baseline, 2),
    }


def _train(root: Path) -> tuple[list[dict[str, Any]], ModelStore]:
    from sot.generator import generate_batch
    from sot.publisher import publish_labels, write_batch

    store = FileObjectStore(root / "train-store")
    for i in range(TRAIN_DAYS):
        batch = generate_batch(NETWORK, FIRST + dt.timedelta(days=i), **TRAIN_SIZE)
        write_batch(store, batch)
        publish_labels(store, _NoEvents(), TopicNames(), batch)
    last = FIRST + dt.timedelta(days=TRAIN_DAYS - 1)

    started = time.perf_counter()
    dates = labelled_dates(store, NETWORK, FIRST, last, WINDOW, today=last + dt.timedelta(days=1))
    featurised = time.perf_counter()
    models = train_models(dates, network=NETWORK, window_days=WINDOW, profile=get_profile("honest-a"))
    finished = time.perf_counter()
    model_store = ModelStore(root / "models")
    for model in models:
        model_store.save(model.stem, model.data, model.metadata)

    # baseline: one plain XGBoost binary model (same depth and rounds) on the same rows, features given
    profile = get_profile("honest-a")
    names = list(dates[0].alerts.names)
    x = np.vstack([d.alerts.values for d in dates])
    y = np.concatenate([d.alert_labels for d in dates])
    base_started = time.perf_counter()
    params = {"objective": "binary:logistic", "tree_method": "hist", "nthread": 2, "max_depth": profile.max_depth}
    xgb.train(params, xgb.DMatrix(x, y, feature_names=names), num_boost_round=profile.rounds)
    baseline = time.perf_counter() - base_started

    auc = models[0].metadata["validation"]["auc_roc"]
    rows = [
        _row(
            f"train 3 models, {TRAIN_DAYS} days x 10k alerts, incl. features (budget 120 s)",
            finished - started,
            "s",
            baseline,
        ),
        _row(f"  of which features of {len(y)} alerts", featurised - started, "s", None),
        _row("  of which alert_scorer + alert_ranker + cluster_scorer", finished - featurised, "s", baseline),
        _row("  alert_scorer validation AUC-ROC (held-out dates)", float(auc), "auc", None),
    ]
    return rows, model_store


def _score(root: Path, model_store: ModelStore) -> list[dict[str, Any]]:
    from sot.generator import generate_batch
    from sot.publisher import write_batch

    store = FileObjectStore(root / "score-store")
    date = FIRST + dt.timedelta(days=TRAIN_DAYS + 1)
    write_batch(store, generate_batch(NETWORK, date, **SCORE_SIZE))
    key = snapshot_key(NETWORK, date, WINDOW, MANIFEST)
    models = ScoringModels(
        *(model_store.latest(t, NETWORK) for t in ("alert_scorer", "alert_ranker", "cluster_scorer"))
    )
    codec = AvroCodec(FileSchemaRegistry.default())

    started = time.perf_counter()
    batch = read_batch(store, key)
    loaded = time.perf_counter()
    alerts = build_alert_features(batch)
    clusters = build_cluster_features(batch, alerts)
    featurised = time.perf_counter()
    scores = score_with_models(alerts, clusters, models, ranker_weight=0.3)
    scored = time.perf_counter()
    records = submission_records(
        scores, manifest=batch.manifest, miner_id="bench", buckets=16, chunk_size=1000, latency_ms=0.0,
        produced_at=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    encoded = [codec.encode(r.schema, r.value) for r in records]
    finished = time.perf_counter()

    # baseline: read the same flows file and sum amounts per sender and per receiver, nothing else
    folder = key.removesuffix(MANIFEST)
    base_started = time.perf_counter()
    flows = pq.read_table(io.BytesIO(store.get(folder + "money_flows.parquet")))
    flows.group_by("from_address").aggregate([("amount_usd_sum", "sum")])
    flows.group_by("to_address").aggregate([("amount_usd_sum", "sum")])
    pc.sum(flows["amount_usd_sum"])
    baseline = time.perf_counter() - base_started

    n_alerts, n_flows = batch.alerts.num_rows, batch.money_flows.num_rows
    return [
        _row(
            f"featurise+score {n_alerts // 1000}k alerts / {n_flows / 1e6:.0f}M flows, end to end (budget 20 s)",
            finished - started,
            "s",
            baseline,
        ),
        _row("  of which download + sha256 + parquet + schema check", loaded - started, "s", None),
        _row(
            f"  of which {len(alerts.names)} alert + {len(clusters.names)} cluster features",
            featurised - loaded,
            "s",
            baseline,
        ),
        _row("  of which 3 models predict + blend", scored - featurised, "s", None),
        _row(f"  of which {len(encoded)} Avro records built + encoded", finished - scored, "s", None),
    ]


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-miner-") as tmp:
        root = Path(tmp)
        train_rows, model_store = _train(root)
        return _score(root, model_store) + train_rows


def _print(rows: list[dict[str, Any]]) -> None:
    width = max(len(r["case"]) for r in rows)
    print(f"{'case':<{width}}  {'value':>9} unit  {'baseline':>9}  ratio")
    for r in rows:
        baseline = "" if r["baseline"] is None else f"{r['baseline']:>9.3f}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:>5.1f}x"
        print(f"{r['case']:<{width}}  {r['value']:>9.3f} {r['unit']:<4}  {baseline:>9}  {ratio}")


if __name__ == "__main__":
    _print(run())
