"""Feature building: canonical order, vectorised maths checked against plain Python, and no label leakage."""

from __future__ import annotations

import datetime as dt
import inspect
import math
import statistics

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from miner_synth import Published, make_batch, publish

from miner.features import (
    CLUSTER_FEATURE_NAMES,
    FEATURE_GROUPS,
    FEATURE_NAMES,
    build_alert_features,
    build_cluster_features,
    index_of,
)
from miner.metrics import auc_roc
from miner.training import labelled_dates
from streams.batch import ALERT_LABELS, LABEL_FILES, MANIFEST, Batch, FlowFile, Manifest, labels_key, read_batch
from streams.objectstore import FileObjectStore, sha256_hex


def _batch(synth_date: dt.date = dt.date(2026, 3, 2), alerts: int = 200, flows: int = 1500) -> Batch:
    synth = make_batch(synth_date, alerts=alerts, flows=flows, seed=3)
    t = synth.tables
    manifest = Manifest("ethereum", synth_date, 7, "b1", dt.datetime(2026, 3, 2, tzinfo=dt.UTC), {})
    return Batch(
        manifest,
        "k",
        t["alerts.parquet"],
        t["features.parquet"],
        t["clusters.parquet"],
        t["money_flows.parquet"],
        t["address_labels.parquet"],
    )


def _shuffled(table: pa.Table, seed: int) -> pa.Table:
    return table.take(np.random.default_rng(seed).permutation(table.num_rows))


def test_feature_names_are_canonical_unique_and_grouped() -> None:
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) >= 56
    assert tuple(n for g in FEATURE_GROUPS.values() for n in g) == FEATURE_NAMES
    assert not any(
        "label" in n and not n.startswith(("has_public", "public_", "counterparty_risky")) for n in FEATURE_NAMES
    )


def test_matrix_has_one_row_per_alert_in_batch_order() -> None:
    batch = _batch()
    features = build_alert_features(batch)
    assert features.names == FEATURE_NAMES
    assert features.values.shape == (batch.alerts.num_rows, len(FEATURE_NAMES))
    assert features.ids == batch.alerts["alert_id"].to_pylist()
    assert np.array_equal(features.column("volume_usd"), batch.alerts["volume_usd"].to_numpy())


def test_features_do_not_depend_on_row_order_of_any_table() -> None:
    batch = _batch()
    reference = build_alert_features(batch)
    shuffled = Batch(
        batch.manifest,
        batch.key,
        _shuffled(batch.alerts, 1),
        _shuffled(batch.features, 2),
        _shuffled(batch.clusters, 3),
        _shuffled(batch.money_flows, 4),
        _shuffled(batch.address_labels, 5),
    )
    other = build_alert_features(shuffled)
    position = {alert_id: i for i, alert_id in enumerate(other.ids)}
    reordered = other.values[[position[i] for i in reference.ids]]
    np.testing.assert_allclose(reordered, reference.values, rtol=1e-9, equal_nan=True)


def test_flow_features_match_a_plain_python_computation() -> None:
    batch = _batch(alerts=60, flows=400)
    features = build_alert_features(batch)
    assert isinstance(batch.money_flows, pa.Table)  # built in memory, not read from a file
    flows = batch.money_flows.to_pylist()
    mixers = {r["address"] for r in batch.features.to_pylist() if r["is_mixer_like"]}
    for row, address in enumerate(batch.alerts["address"].to_pylist()):
        outgoing = [f for f in flows if f["from_address"] == address]
        incoming = [f for f in flows if f["to_address"] == address]
        total = sum(f["amount_usd_sum"] for f in outgoing + incoming)
        mixer_usd = sum(f["amount_usd_sum"] for f in outgoing if f["to_address"] in mixers) + sum(
            f["amount_usd_sum"] for f in incoming if f["from_address"] in mixers
        )
        assert features.column("flow_out_degree")[row] == len(outgoing)
        assert features.column("flow_in_degree")[row] == len(incoming)
        assert features.column("flow_out_usd")[row] == pytest.approx(sum(f["amount_usd_sum"] for f in outgoing))
        assert features.column("flow_in_tx")[row] == sum(f["tx_count"] for f in incoming)
        expected_share = mixer_usd / total if total else 0.0
        assert features.column("counterparty_mixer_usd_share")[row] == pytest.approx(expected_share)


def test_address_statistics_match_a_plain_python_computation() -> None:
    """count, mean, population std, min and max over each address's alerts; null volumes skipped."""
    batch = _batch(alerts=300)
    alerts = batch.alerts
    addresses = [None if i % 23 == 4 else a for i, a in enumerate(alerts["address"].to_pylist())]  # a null group
    volumes = [None if i % 5 == 0 else v for i, v in enumerate(alerts["volume_usd"].to_pylist())]
    alerts = alerts.set_column(alerts.schema.get_field_index("address"), "address", pa.array(addresses, pa.string()))
    alerts = alerts.set_column(alerts.schema.get_field_index("volume_usd"), "volume_usd", pa.array(volumes))
    features = build_alert_features(Batch(batch.manifest, batch.key, alerts, *_rest(batch)))
    by_address: dict[str | None, list[float]] = {}
    for address, volume in zip(addresses, volumes, strict=True):
        by_address.setdefault(address, []).extend([] if volume is None else [volume])
    assert len(by_address[None]) > 1
    for row, address in enumerate(addresses):
        seen = by_address[address]
        expected = [len(seen), *((statistics.fmean(seen), statistics.pstdev(seen), min(seen), max(seen)) if seen
                                 else (math.nan,) * 4)]  # fmt: skip
        found = [features.column(f"address_{n}")[row] for n in ("alert_count", "volume_mean", "volume_std")]
        found += [features.column(f"address_volume_{n}")[row] for n in ("min", "max")]
        assert found == pytest.approx(expected, rel=1e-12, abs=1e-9, nan_ok=True)


def _rest(batch: Batch) -> tuple[pa.Table, pa.Table, pa.Table | FlowFile, pa.Table]:
    return batch.features, batch.clusters, batch.money_flows, batch.address_labels


@pytest.mark.parametrize(("keys", "universe"), [(30, 8), (8, 300), (0, 20), (20, 0)])
def test_index_of_is_the_first_position_whichever_side_it_hashes(keys: int, universe: int) -> None:
    """A few keys in a large universe are found by scanning it (hashing the keys): the same positions."""
    rng = np.random.default_rng(keys * 1000 + universe)
    pool = [f"0x{i:03d}" for i in range(40)]
    wanted = [None if i % 7 == 3 else pool[rng.integers(0, 40)] for i in range(keys)]
    known = [None if i % 11 == 5 else pool[rng.integers(0, 40)] for i in range(universe)]  # repeats and nulls
    first: dict[str | None, int] = {}
    for position, value in enumerate(known):
        first.setdefault(value, position)  # a null key finds a null of the universe, as Arrow's index_in does
    expected = [first.get(k, -1) for k in wanted]
    keys_array, universe_array = pa.array(wanted, pa.string()), pa.array(known, pa.string())
    assert index_of(keys_array, universe_array).tolist() == expected
    assert index_of(pa.chunked_array([keys_array]), pa.chunked_array([universe_array])).tolist() == expected


def test_unknown_addresses_give_missing_values_not_errors() -> None:
    batch = _batch()
    assert isinstance(batch.money_flows, pa.Table)
    empty = Batch(
        batch.manifest,
        batch.key,
        batch.alerts,
        batch.features.slice(0, 0),
        batch.clusters.slice(0, 0),
        batch.money_flows.slice(0, 0),
        batch.address_labels.slice(0, 0),
    )
    features = build_alert_features(empty)
    assert np.isnan(features.column("pagerank")).all()
    assert (features.column("flow_in_degree") == 0).all()
    assert (features.column("has_public_label") == 0).all()


def test_cluster_features_aggregate_member_alerts() -> None:
    batch = _batch()
    alerts = build_alert_features(batch)
    clusters = build_cluster_features(batch, alerts)
    assert clusters.names == CLUSTER_FEATURE_NAMES
    first = batch.clusters.to_pylist()[0]
    members = [alerts.ids.index(a) for a in first["related_alert_ids"]]
    row = clusters.ids.index(first["cluster_id"])
    assert clusters.column("member_count")[row] == len(members)
    expected = alerts.column("behavioral_anomaly_score")[members].max()
    assert clusters.column("member_max_behavioral_anomaly")[row] == pytest.approx(expected)


def test_ground_truth_is_not_an_input_of_any_feature(published: Published, tmp_path: object) -> None:
    """Flip every published ground-truth label: the features of the same dates stay identical."""
    assert list(inspect.signature(build_alert_features).parameters) == ["batch"]
    store = published.store
    date = published.batches[0].date
    original = labelled_dates(store, "ethereum", date, date, 7, today=dt.date(2027, 1, 1))[0]

    flipped_store = FileObjectStore(store.root.parent / f"{store.root.name}-flipped")
    for key in store.list(f"snapshots/ethereum/{date.isoformat()}/"):
        flipped_store.put(key, store.get(key))
    synth = published.batches[0]
    flipped = pa.table(
        {"alert_id": synth.alert_labels["alert_id"], "label": pc.subtract(1, synth.alert_labels["label"])},
        schema=ALERT_LABELS,
    )
    publish_labels = {"alert_labels.parquet": flipped, "cluster_labels.parquet": synth.cluster_labels}
    assert set(publish_labels) == set(LABEL_FILES)
    from miner_synth import _write, parquet_bytes

    _write(
        flipped_store,
        labels_key("ethereum", date, 7),
        date,
        {n: parquet_bytes(t) for n, t in publish_labels.items()},
        "labels",
    )
    again = labelled_dates(flipped_store, "ethereum", date, date, 7, today=dt.date(2027, 1, 1))[0]
    assert np.array_equal(again.alert_labels, 1 - original.alert_labels)
    np.testing.assert_array_equal(again.alerts.values, original.alerts.values)
    assert sha256_hex(again.alerts.values.tobytes()) == sha256_hex(original.alerts.values.tobytes())


def test_no_single_feature_reproduces_the_label(published: Published) -> None:
    """A leaked label shows up as a feature with AUC near 1 (or 0); ours are all far from it."""
    dates = labelled_dates(
        published.store, "ethereum", published.train_dates[0], published.train_dates[-1], 7, today=dt.date(2027, 1, 1)
    )
    values = np.vstack([d.alerts.values for d in dates])
    labels = np.concatenate([d.alert_labels for d in dates])
    for i, name in enumerate(FEATURE_NAMES):
        column = np.nan_to_num(values[:, i], nan=-1.0)
        auc = auc_roc(labels, column)
        if not np.isnan(auc):
            assert 0.1 < auc < 0.9, f"{name} separates the label almost perfectly (AUC {auc:.3f})"


def test_public_labels_only_change_label_derived_features() -> None:
    batch = _batch()
    without = Batch(
        batch.manifest,
        batch.key,
        batch.alerts,
        batch.features,
        batch.clusters,
        batch.money_flows,
        batch.address_labels.slice(0, 0),
    )
    a, b = build_alert_features(batch), build_alert_features(without)
    changed = {
        n for i, n in enumerate(FEATURE_NAMES) if not np.array_equal(a.values[:, i], b.values[:, i], equal_nan=True)
    }
    assert changed <= {
        "has_public_label",
        "public_risk_code",
        "public_label_confidence",
        "counterparty_risky_label_usd_share",
    }
    assert "has_public_label" in changed


def test_manifest_files_are_what_features_read(tmp_path: object, published: Published) -> None:
    batch = read_batch(published.store, published.keys[0])
    assert batch.key.endswith(MANIFEST)
    assert build_alert_features(batch).values.shape[0] == batch.manifest.files["alerts.parquet"].rows


def test_publish_helper_round_trips(tmp_path: pytest.TempPathFactory) -> None:
    store = FileObjectStore(tmp_path)  # type: ignore[arg-type]
    key = publish(store, make_batch(dt.date(2026, 5, 1), alerts=50, flows=200))
    assert read_batch(store, key).alerts.num_rows == 50
