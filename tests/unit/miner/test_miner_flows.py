"""Flow features read in slices are bit-identical to a group-by over the whole flows table."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from miner_synth import make_batch, publish

from miner.features import FEATURE_NAMES, build_alert_features, build_cluster_features, index_of
from streams.batch import MANIFEST, MONEY_FLOWS, Batch, FlowFile, Manifest, read_batch
from streams.errors import BatchSchemaError
from streams.objectstore import FileObjectStore, sha256_hex

_NETWORK = FEATURE_NAMES[FEATURE_NAMES.index("flow_in_degree") : FEATURE_NAMES.index("flow_in_degree") + 10]


def _f64(array: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.cast(array, pa.float64()), np.nan).to_numpy(zero_copy_only=False), np.float64)


def _reference(batch: Batch, flows: pa.Table) -> list[np.ndarray]:
    """The network features as one group-by over every flow (how they were first computed)."""
    addresses = batch.alerts["address"]
    risky = batch.address_labels.filter(
        pc.is_in(pc.utf8_lower(batch.address_labels["risk_level"]), pa.array(["high", "critical"]))
    )["address"]
    mixers = batch.features.filter(pc.fill_null(batch.features["is_mixer_like"], False))["address"]
    amount = pc.fill_null(pc.cast(flows["amount_usd_sum"], pa.float64()), 0.0)
    txs = pc.fill_null(pc.cast(flows["tx_count"], pa.float64()), 0.0)
    bidir = pc.cast(pc.fill_null(flows["is_bidirectional"], False), pa.float64())

    def side(address: str, counterparty: str) -> pa.Table:
        cp = flows[counterparty]
        return pa.table(
            {
                "address": flows[address],
                "amount": amount,
                "txs": txs,
                "bidir": bidir,
                "mixer_usd": pc.multiply(amount, pc.cast(pc.is_in(cp, mixers), pa.float64())),
                "risky_usd": pc.multiply(amount, pc.cast(pc.is_in(cp, risky), pa.float64())),
            }
        )

    aggregations = [("amount", "count"), ("amount", "sum"), ("txs", "sum"), ("bidir", "sum")]
    out = side("from_address", "to_address").group_by("address", use_threads=False).aggregate(aggregations)
    into = side("to_address", "from_address").group_by("address", use_threads=False).aggregate(aggregations)
    both = (
        pa.concat_tables([side("from_address", "to_address"), side("to_address", "from_address")])
        .group_by("address", use_threads=False)
        .aggregate(
            [
                ("amount", "sum"),
                ("txs", "sum"),
                ("bidir", "sum"),
                ("amount", "count"),
                ("mixer_usd", "sum"),
                ("risky_usd", "sum"),
            ]
        )  # fmt: skip
    )

    def get(table: pa.Table, column: str) -> np.ndarray:
        at = index_of(addresses, table["address"])
        values = np.zeros(len(at))
        values[at >= 0] = _f64(table[column])[at[at >= 0]]
        return values

    total_usd, total_tx, links = get(both, "amount_sum"), get(both, "txs_sum"), get(both, "amount_count")
    with np.errstate(divide="ignore", invalid="ignore"):
        return [
            get(into, "amount_count"),
            get(out, "amount_count"),
            get(into, "amount_sum"),
            get(out, "amount_sum"),
            get(into, "txs_sum"),
            get(out, "txs_sum"),
            np.where(total_tx > 0, total_usd / total_tx, 0.0),
            np.where(links > 0, get(both, "bidir_sum") / links, 0.0),
            np.where(total_usd > 0, get(both, "mixer_usd_sum") / total_usd, 0.0),
            np.where(total_usd > 0, get(both, "risky_usd_sum") / total_usd, 0.0),
        ]


def _batch(alerts: int = 400, flows: int = 20_000, seed: int = 5) -> Batch:
    synth = make_batch(dt.date(2026, 4, 2), alerts=alerts, flows=flows, seed=seed)
    t = synth.tables
    manifest = Manifest("ethereum", synth.date, 7, "b1", dt.datetime(2026, 4, 2, tzinfo=dt.UTC), {})
    return Batch(
        manifest, "k", t["alerts.parquet"], t["features.parquet"], t["clusters.parquet"], t["money_flows.parquet"],
        t["address_labels.parquet"],
    )  # fmt: skip


def _file(table: pa.Table, *, row_group: int, batch_rows: int) -> FlowFile:
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=row_group)
    return FlowFile(out.getvalue(), "money_flows.parquet", batch_rows=batch_rows)


def _bits(values: np.ndarray) -> str:
    return sha256_hex(np.ascontiguousarray(values).tobytes())


@pytest.mark.parametrize(("row_group", "batch_rows"), [(1 << 20, 1 << 17), (3_000, 1_000), (997, 4_096), (50, 7)])
def test_network_features_are_bit_identical_to_one_group_by(row_group: int, batch_rows: int) -> None:
    batch = _batch()
    table = batch.money_flows
    assert isinstance(table, pa.Table)
    sliced = dataclasses.replace(batch, money_flows=_file(table, row_group=row_group, batch_rows=batch_rows))
    built = build_alert_features(sliced)
    for name, expected in zip(_NETWORK, _reference(batch, table), strict=True):
        assert _bits(built.column(name)) == _bits(expected), name
    assert built.column("flow_out_degree").sum() > 0 and built.column("counterparty_mixer_usd_share").max() > 0


def test_every_feature_is_the_same_from_the_file_and_from_the_table() -> None:
    batch = _batch(alerts=300, flows=9_000, seed=9)
    assert isinstance(batch.money_flows, pa.Table)
    sliced = dataclasses.replace(batch, money_flows=_file(batch.money_flows, row_group=2_000, batch_rows=512))
    a, b = build_alert_features(batch), build_alert_features(sliced)
    assert a.ids == b.ids and _bits(a.values) == _bits(b.values)
    assert _bits(build_cluster_features(batch, a).values) == _bits(build_cluster_features(sliced, b).values)


def test_nulls_and_unknown_addresses_count_as_the_group_by_counts_them() -> None:
    batch = _batch(alerts=100, flows=2_000, seed=2)
    assert isinstance(batch.money_flows, pa.Table)
    flows = batch.money_flows.to_pydict()
    for i in range(0, 2_000, 13):
        flows["amount_usd_sum"][i] = None
        flows["tx_count"][i + 1] = None
        flows["is_bidirectional"][i + 2] = None
        flows["to_address"][i + 3] = None
        flows["from_address"][i + 4] = "0xnobody"
    table = pa.table(flows, schema=MONEY_FLOWS)
    with_nulls = dataclasses.replace(batch, money_flows=_file(table, row_group=300, batch_rows=128))
    built = build_alert_features(with_nulls)
    for name, expected in zip(_NETWORK, _reference(batch, table), strict=True):
        assert _bits(built.column(name)) == _bits(expected), name


def test_loaded_batches_read_flows_from_the_file(tmp_path: object) -> None:
    store = FileObjectStore(tmp_path)  # type: ignore[arg-type]
    synth = make_batch(dt.date(2026, 5, 3), alerts=120, flows=3_000, seed=4)
    key = publish(store, synth)
    loaded = read_batch(store, key)
    assert isinstance(loaded.money_flows, FlowFile) and loaded.money_flows.num_rows == 3_000
    in_memory = dataclasses.replace(loaded, money_flows=synth.tables["money_flows.parquet"])
    assert _bits(build_alert_features(loaded).values) == _bits(build_alert_features(in_memory).values)
    assert key.endswith(MANIFEST)


def test_an_off_contract_flows_file_is_a_schema_error() -> None:
    table = _batch(alerts=20, flows=100).money_flows
    assert isinstance(table, pa.Table)
    with pytest.raises(BatchSchemaError, match="missing column"):
        _file(table.drop_columns(["tx_count"]), row_group=50, batch_rows=50)
    as_text = table.set_column(2, "tx_count", pc.cast(table["tx_count"], pa.string()))
    bad = as_text.set_column(2, "tx_count", pa.array(["1"] * 99 + ["many"]))
    with pytest.raises(BatchSchemaError, match="off-contract"):
        list(_file(bad, row_group=50, batch_rows=50).batches())
    with pytest.raises(BatchSchemaError, match="not readable parquet"):
        FlowFile(b"PAR1 not parquet", "money_flows.parquet")
    with pytest.raises(BatchSchemaError, match="is list"):
        _file(table.set_column(3, "amount_usd_sum", pa.array([[1.0]] * 100)), row_group=50, batch_rows=50)
