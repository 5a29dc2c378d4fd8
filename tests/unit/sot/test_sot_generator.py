"""Shape, contract and determinism of generated batches."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sot_batches import DAY, SMALL, small_batch

from sot.errors import SotInputError
from sot.generator import GeneratedBatch, generate_batch, to_parquet
from sot.universe import build_universe
from streams import batch as contract


@pytest.fixture
def batch() -> GeneratedBatch:
    return small_batch()


def test_every_table_has_exactly_the_contract_schema(batch: GeneratedBatch) -> None:
    assert set(batch.tables) == set(contract.BATCH_FILES)
    for name, table in batch.tables.items():
        assert table.schema.equals(contract.BATCH_FILES[name]), name
        # and so does the parquet file read back
        assert pq.read_table(pa.BufferReader(to_parquet(table))).schema.equals(contract.BATCH_FILES[name]), name
    assert batch.alert_labels.schema.equals(contract.ALERT_LABELS)
    assert batch.cluster_labels.schema.equals(contract.CLUSTER_LABELS)
    assert batch.traps.schema.equals(contract.TRAPS)


def test_row_counts_follow_the_arguments(batch: GeneratedBatch) -> None:
    t = batch.tables
    assert t["alerts.parquet"].num_rows == SMALL["alerts"]
    assert t["money_flows.parquet"].num_rows == SMALL["flows"]
    assert 0 < t["clusters.parquet"].num_rows <= SMALL["clusters"]
    features = t["features.parquet"].column("address").to_pylist()
    assert len(features) == len(set(features)) <= SMALL["addresses"]
    flows = t["money_flows.parquet"]
    pairs = set(zip(flows.column("from_address").to_pylist(), flows.column("to_address").to_pylist(), strict=True))
    assert len(pairs) == flows.num_rows  # one row per (from, to) pair
    assert set(flows.column("from_address").to_pylist()) | set(flows.column("to_address").to_pylist()) == set(features)


def test_alert_ids_are_unique_and_dated(batch: GeneratedBatch) -> None:
    alerts = batch.tables["alerts.parquet"]
    ids = alerts.column("alert_id").to_pylist()
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"ethereum-20260310-\d{6}", i) for i in ids)
    assert set(alerts.column("processing_date").to_pylist()) == {DAY}
    assert set(alerts.column("window_days").to_pylist()) == {7}
    assert set(alerts.column("network").to_pylist()) == {"ethereum"}
    assert set(alerts.column("severity").to_pylist()) <= set(contract.SEVERITIES)
    conf = alerts.column("alert_confidence_score").to_numpy()
    assert ((conf >= 0) & (conf <= 1)).all()
    assert set(alerts.column("address").to_pylist()) <= set(
        batch.tables["features.parquet"].column("address").to_pylist()
    )


def test_clusters_reference_alerts_of_the_same_batch(batch: GeneratedBatch) -> None:
    alerts = batch.tables["alerts.parquet"].to_pylist()
    by_id = {a["alert_id"]: a for a in alerts}
    clusters = batch.tables["clusters.parquet"].to_pylist()
    seen: set[str] = set()
    for c in clusters:
        members = c["related_alert_ids"]
        assert len(members) == c["total_alerts"] >= 2
        assert not seen & set(members)  # an alert is in at most one cluster
        seen |= set(members)
        assert all(by_id[m]["cluster_id"] == c["cluster_id"] for m in members)
        assert set(c["addresses_involved"]) == {by_id[m]["address"] for m in members}
        assert c["primary_address"] in c["addresses_involved"]
        assert c["total_volume_usd"] == pytest.approx(sum(by_id[m]["volume_usd"] for m in members), rel=1e-6)
    in_cluster = {a["alert_id"] for a in alerts if a["cluster_id"] is not None}
    assert in_cluster == seen
    assert batch.cluster_labels.column("cluster_id").to_pylist() == [c["cluster_id"] for c in clusters]


def test_labels_are_the_hidden_risk_of_each_alert_address(batch: GeneratedBatch) -> None:
    universe = build_universe("ethereum", SMALL["addresses"], SMALL["seed"])
    risky = dict(zip(universe.addresses.tolist(), universe.risky.tolist(), strict=True))
    alerts = batch.tables["alerts.parquet"]
    expected = [int(risky[a]) for a in alerts.column("address").to_pylist()]
    assert batch.alert_labels.column("alert_id").to_pylist() == alerts.column("alert_id").to_pylist()
    assert batch.alert_labels.column("label").to_pylist() == expected
    rate = float(np.mean(expected))
    assert 0.1 < rate < 0.5  # a real mix of both classes


def test_traps_are_real_alerts_with_their_true_label(batch: GeneratedBatch) -> None:
    traps = batch.traps.to_pylist()
    assert len(traps) == max(10, round(SMALL["alerts"] * 0.01))
    truth = dict(
        zip(
            batch.alert_labels.column("alert_id").to_pylist(),
            batch.alert_labels.column("label").to_pylist(),
            strict=True,
        )
    )
    assert all(truth[t["alert_id"]] == t["expected_label"] for t in traps)
    assert {t["expected_label"] for t in traps} == {0, 1}


def test_same_arguments_same_bytes_and_other_dates_differ() -> None:
    a = generate_batch("ethereum", DAY, **SMALL)
    b = generate_batch("ethereum", DAY, **SMALL)
    assert a.snapshot_files() == b.snapshot_files()
    assert a.label_files() == b.label_files()
    assert a.trap_files() == b.trap_files()
    other = small_batch(DAY + dt.timedelta(days=1))
    assert other.snapshot_files()["alerts.parquet"] != a.snapshot_files()["alerts.parquet"]
    assert generate_batch("ethereum", DAY, **{**SMALL, "seed": 12}).snapshot_files() != a.snapshot_files()


def test_days_share_the_address_universe() -> None:
    one = set(small_batch(DAY).tables["alerts.parquet"].column("address").to_pylist())
    two = set(small_batch(DAY + dt.timedelta(days=1)).tables["alerts.parquet"].column("address").to_pylist())
    assert len(one & two) > 0.2 * len(one)  # repeat offenders: history matters


def test_public_labels_only_grow_and_never_give_the_truth_away() -> None:
    early = small_batch(DAY - dt.timedelta(days=200)).tables["address_labels.parquet"]
    late = small_batch(DAY).tables["address_labels.parquet"]
    universe = build_universe("ethereum", SMALL["addresses"], SMALL["seed"])
    known_early = set(
        np.asarray(universe.addresses)[universe.label_day < (DAY - dt.timedelta(days=200) - dt.date(2025, 1, 1)).days]
    )
    assert set(early.column("address").to_pylist()) <= known_early
    assert late.num_rows > early.num_rows
    risky_addresses = {a for a, r in zip(universe.addresses.tolist(), universe.risky.tolist(), strict=True) if r}
    batch_risky = risky_addresses & set(small_batch(DAY).tables["features.parquet"].column("address").to_pylist())
    assert len(batch_risky & set(late.column("address").to_pylist())) < 0.6 * len(batch_risky)  # partial
    assert set(late.column("risk_level").to_pylist()) <= set(contract.RISK_LEVELS)


def test_networks_have_their_own_universe_and_address_format() -> None:
    btc = small_batch(DAY, "bitcoin").tables["alerts.parquet"].column("address").to_pylist()
    assert all(a.startswith("bc1q") for a in btc)
    eth = set(small_batch(DAY).tables["alerts.parquet"].column("address").to_pylist())
    assert not eth & set(btc)


@pytest.mark.parametrize(
    ("network", "sizes", "needle"),
    [
        ("Doge Coin", {}, "not a network name"),
        ("ethereum", {"addresses": 10}, "at least 200 addresses"),
        ("ethereum", {"alerts": 5000}, "alerts must be"),
        ("ethereum", {"flows": 10}, "flows must be"),
        ("ethereum", {"clusters": 900}, "clusters must be"),
        ("ethereum", {"window_days": 0}, "window_days"),
    ],
)
def test_impossible_arguments_raise_a_clear_error(network: str, sizes: dict[str, int], needle: str) -> None:
    with pytest.raises(SotInputError, match=needle):
        generate_batch(network, DAY, **{**SMALL, **sizes})


def test_cluster_label_is_the_truth_of_its_primary_address_or_majority(batch: GeneratedBatch) -> None:
    universe = build_universe("ethereum", SMALL["addresses"], SMALL["seed"])
    risky = dict(zip(universe.addresses.tolist(), universe.risky.tolist(), strict=True))
    labels = dict(
        zip(
            batch.cluster_labels.column("cluster_id").to_pylist(),
            batch.cluster_labels.column("label").to_pylist(),
            strict=True,
        )
    )
    for c in batch.tables["clusters.parquet"].to_pylist():
        majority = np.mean([risky[a] for a in c["addresses_involved"]]) > 0.5
        assert labels[c["cluster_id"]] == int(risky[c["primary_address"]] or majority)
    assert set(labels.values()) == {0, 1}


def test_times_fall_inside_the_window(batch: GeneratedBatch) -> None:
    start = dt.datetime.combine(DAY - dt.timedelta(days=6), dt.time(), dt.UTC)
    end = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(), dt.UTC)
    flows = batch.tables["money_flows.parquet"].to_pydict()
    for first, last, days in zip(flows["first_seen"], flows["last_seen"], flows["active_days"], strict=True):
        assert start <= first <= last < end
        assert 1 <= days <= (last.date() - first.date()).days + 1
    features = batch.tables["features.parquet"].to_pydict()
    assert all(a <= b < end for a, b in zip(features["first_seen"], features["last_seen"], strict=True))
    assert all(1 <= d <= 7 for d in features["activity_days"])
