"""An owner's own files: ``sot check``, ``sot publish --from``, ``sot labels --from``, ``sot contract``.

Every defect exits 2 naming the file, the column and the count, and uploads nothing; a
different batch for a published (network, date, window) changes nothing without ``--replace``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from simulation.owner_files import OwnerBatch, build_owner_batch, parquet_bytes, write_files
from streams import batch as contract
from streams.cli import main
from streams.objectstore import FileObjectStore
from validator.batches import load_labels
from validator.errors import BatchLoadError

DATE = dt.date(2026, 3, 2)  # long past: its labels are due
ARGS = ["--network", "torus", "--date", DATE.isoformat()]
KEY = contract.snapshot_key("torus", DATE, 7, contract.MANIFEST)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FileObjectStore:
    root = tmp_path / "store"
    monkeypatch.setenv("RISKSTREAM_OBJECT_STORE_URL", f"file://{root}")
    monkeypatch.setenv("RISKSTREAM_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("SOT_EMIT_EVENTS", "false")  # no broker here; events are tested in integration
    monkeypatch.delenv("SOT_NETWORK", raising=False)
    return FileObjectStore(root)


@pytest.fixture(scope="module")
def owner() -> OwnerBatch:
    return build_owner_batch("torus", DATE, alerts=120, seed=3)


def _snapshot(store: FileObjectStore) -> dict[str, bytes]:
    return {k: store.get(k) for k in store.list()}


def test_a_clean_owner_batch_checks_publishes_and_reads_back(
    store: FileObjectStore, owner: OwnerBatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_files(owner.files, tmp_path / "batch")
    assert main(["sot", "check", str(folder), *ARGS]) == 0
    out = capsys.readouterr().out
    assert "0 problem(s)" in out and "money_flows.parquet: tx_count: int64 -> int32 (lossless)" in out
    assert _snapshot(store) == {}  # check uploads nothing
    assert main(["sot", "publish", "--from", str(folder), *ARGS]) == 0
    batch = contract.read_batch(store, KEY)  # the readers' verification passes
    assert batch.alerts.num_rows == 120 and batch.manifest.extra["source"] == "owner"
    assert batch.alerts.column("alert_id").to_pylist() == owner.files["alerts.parquet"].column("alert_id").to_pylist()
    truth = write_files(owner.labels, tmp_path / "truth")
    assert main(["sot", "labels", "--from", str(truth), *ARGS]) == 0
    labels = contract.labels_for(store, batch.manifest)
    assert labels is not None and labels.manifest.batch_id == batch.manifest.batch_id
    assert labels.alerts.num_rows == 120


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def _first_null(table: pa.Table, name: str, n: int) -> pa.Table:
    values = table.column(name).to_pylist()
    return _set(table, name, pa.array([None] * n + values[n:], table.schema.field(name).type))


Defect = Callable[[dict[str, pa.Table]], dict[str, pa.Table]]


def _with(name: str, change: Callable[[pa.Table], pa.Table]) -> Defect:
    return lambda files: {**files, name: change(files[name])}


def _dup_ids(t: pa.Table) -> pa.Table:
    ids = t.column("alert_id").to_pylist()
    return _set(t, "alert_id", pa.array(ids[:3] + ids[:3] + ids[6:]))


def _orphans(files: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Five alerts whose address has no features row."""
    gone = files["alerts.parquet"].column("address").slice(0, 5).combine_chunks()
    features = files["features.parquet"]
    return {
        **files,
        "features.parquet": features.filter(pc.invert(pc.is_in(features.column("address"), value_set=gone))),
    }


def _amounts(t: pa.Table) -> pa.Table:
    amount = t.column("amount_usd_sum").to_numpy().copy()
    amount[:2] = -5.0
    amount[2:5] = float("nan")
    amount[5] = float("inf")
    return _set(t, "amount_usd_sum", pa.array(amount))


def _naive(t: pa.Table) -> pa.Table:
    return _set(t, "first_seen", pc.cast(t.column("first_seen"), pa.timestamp("us")))


DEFECTS: list[tuple[str, Defect, list[str]]] = [
    ("missing column", _with("alerts.parquet", lambda t: t.drop_columns(["severity"])), ["alerts.parquet: severity: missing column", "(120 rows)"]),  # noqa: E501
    ("extra column", _with("alerts.parquet", lambda t: t.append_column("sevrity", t.column("severity"))), ["alerts.parquet: sevrity: extra column", "(120 rows)"]),  # noqa: E501
    ("lossy type", _with("features.parquet", lambda t: _set(t, "degree_in", pa.array([2**40] * 7 + [1] * (t.num_rows - 7), pa.int64()))), ["features.parquet: degree_in: type int64 does not cast losslessly to int32 (7 rows)"]),  # noqa: E501
    ("text for numbers", _with("alerts.parquet", lambda t: _set(t, "volume_usd", pa.array(["12.5", "lots"] * 60))), ["alerts.parquet: volume_usd: type string does not cast losslessly to double (60 rows)"]),  # noqa: E501
    ("null keys", _with("alerts.parquet", lambda t: _first_null(t, "alert_id", 4)), ["alerts.parquet: alert_id: nulls in a column that is never null (4 rows)"]),  # noqa: E501
    ("null addresses", _with("money_flows.parquet", lambda t: _first_null(t, "to_address", 9)), ["money_flows.parquet: to_address: nulls in a column that is never null (9 rows)"]),  # noqa: E501
    ("duplicate alert ids", _with("alerts.parquet", _dup_ids), ["alerts.parquet: alert_id: duplicate ids (3 rows)"]),
    ("duplicate cluster ids", _with("clusters.parquet", lambda t: pa.concat_tables([t, t.slice(0, 2)])), ["clusters.parquet: cluster_id: duplicate ids (2 rows)"]),  # noqa: E501
    ("alerts without features", _orphans, ["alerts.parquet: address: no features row for the address (5 rows)"]),
    ("bad amounts", _with("money_flows.parquet", _amounts), ["money_flows.parquet: amount_usd_sum: negative or not finite (6 rows)"]),  # noqa: E501
    ("naive timestamps", _with("money_flows.parquet", _naive), ["money_flows.parquet: first_seen: timestamp without time zone (timestamp[us]); refused unless --assume-utc (3000 rows)"]),  # noqa: E501
    ("empty alerts", _with("alerts.parquet", lambda t: t.slice(0, 0)), ["alerts.parquet: -: no alerts (0 rows)"]),
    ("missing file", lambda files: {n: t for n, t in files.items() if n != "features.parquet"}, ["features.parquet: -: file missing"]),  # noqa: E501
    ("wrong date", _with("alerts.parquet", lambda t: _set(t, "processing_date", pa.array([DATE - dt.timedelta(days=1)] * t.num_rows, pa.date32()))), ["alerts.parquet: processing_date: not the batch's processing_date 2026-03-02 (120 rows)"]),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize(("defect", "needles"), [(d, n) for _, d, n in DEFECTS], ids=[name for name, _, _ in DEFECTS])
def test_each_defect_exits_2_naming_file_column_and_count_and_uploads_nothing(
    store: FileObjectStore,
    owner: OwnerBatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    defect: Defect,
    needles: list[str],
) -> None:
    folder = write_files(defect(dict(owner.files)), tmp_path / "bad")
    assert main(["sot", "check", str(folder), *ARGS]) == 2
    report = capsys.readouterr().out
    for needle in needles:
        assert needle in report, report
    assert main(["sot", "publish", "--from", str(folder), *ARGS]) == 2
    captured = capsys.readouterr()
    assert all(needle in captured.out for needle in needles)
    assert "nothing was uploaded" in captured.err
    assert _snapshot(store) == {}


def test_every_problem_is_listed_not_only_the_first(
    store: FileObjectStore, owner: OwnerBatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = dict(owner.files)
    for _, defect, _ in (DEFECTS[0], DEFECTS[6], DEFECTS[9], DEFECTS[10]):
        files = defect(files)
    assert main(["sot", "check", str(write_files(files, tmp_path / "bad")), *ARGS]) == 2
    out = capsys.readouterr().out
    assert "5 problem(s)" in out  # the four, and the cluster members the duplicated ids pushed out
    assert "clusters.parquet: related_alert_ids: ids not in alerts" in out
    for _, _, needles in (DEFECTS[0], DEFECTS[6], DEFECTS[9], DEFECTS[10]):
        assert needles[0] in out


def test_naive_timestamps_are_taken_as_utc_only_when_asked(
    store: FileObjectStore, owner: OwnerBatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_files(_with("money_flows.parquet", _naive)(dict(owner.files)), tmp_path / "naive")
    assert main(["sot", "publish", "--from", str(folder), *ARGS, "--assume-utc"]) == 0
    assert "first_seen: timestamp[us] as UTC -> timestamp[ms, tz=UTC]" in capsys.readouterr().out
    flows = contract.read_batch(store, KEY).money_flows
    assert not isinstance(flows, pa.Table)
    read = flows.read_all()
    original = owner.files["money_flows.parquet"].column("first_seen")
    assert read.column("first_seen").to_pylist() == pc.cast(original, read.schema.field("first_seen").type).to_pylist()


def test_a_different_batch_is_refused_without_replace_and_replacing_retires_the_old_one(
    store: FileObjectStore, owner: OwnerBatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = write_files(owner.files, tmp_path / "first")
    assert main(["sot", "publish", "--from", str(first), *ARGS]) == 0
    assert main(["sot", "labels", "--from", str(write_files(owner.labels, tmp_path / "truth")), *ARGS]) == 0
    old = contract.read_batch(store, KEY).manifest
    before = _snapshot(store)
    assert main(["sot", "publish", "--from", str(first), *ARGS]) == 0  # the same files again: nothing rewritten
    assert _snapshot(store) == before
    other = build_owner_batch("torus", DATE, alerts=100, seed=9)
    second = write_files(other.files, tmp_path / "second")
    capsys.readouterr()
    assert main(["sot", "publish", "--from", str(second), *ARGS]) == 2
    err = capsys.readouterr().err
    assert f"already holds batch {old.batch_id}" in err and "Nothing was changed" in err and "--replace" in err
    assert _snapshot(store) == before
    # the generator never overwrites a batch it did not make, even with --replace
    sizes = ["--alerts", "100", "--addresses", "1000", "--flows", "5000", "--clusters", "10"]
    assert main(["sot", "publish", "--network", "torus", "--date", DATE.isoformat(), *sizes, "--replace"]) == 2
    assert "which the generator did not make" in capsys.readouterr().err
    assert _snapshot(store) == before

    assert main(["sot", "publish", "--from", str(second), *ARGS, "--replace"]) == 0
    new = contract.read_batch(store, KEY)
    assert new.manifest.batch_id != old.batch_id and new.manifest.extra["replaces"] == old.batch_id
    assert new.alerts.num_rows == 100
    assert contract.labels_for(store, new.manifest) is None  # the old batch's labels no longer apply
    stale = contract.read_manifest(store, contract.labels_key("torus", DATE, 7, contract.MANIFEST))
    with pytest.raises(BatchLoadError, match=f"labels of batch {old.batch_id}, the published batch is"):
        load_labels(store, stale)  # nor at the validator
    retired = f"retired/snapshots/torus/{DATE.isoformat()}/7/{old.batch_id}/"
    assert store.get(retired + contract.MANIFEST) == before[KEY]  # nothing is lost
    assert store.exists(f"retired/labels/torus/{DATE.isoformat()}/7/{old.batch_id}/{contract.MANIFEST}")
    # old labels against the new batch: refused, they name ids it does not have
    capsys.readouterr()
    assert main(["sot", "labels", "--from", str(tmp_path / "truth"), *ARGS]) == 2
    assert "alert_labels.parquet: alert_id: ids not in the published batch" in capsys.readouterr().out


def test_labels_are_checked_against_the_published_ids_and_refused_before_due(
    store: FileObjectStore, owner: OwnerBatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sot", "publish", "--from", str(write_files(owner.files, tmp_path / "b")), *ARGS]) == 0
    partial = {**owner.labels, "alert_labels.parquet": owner.labels["alert_labels.parquet"].slice(0, 100)}
    capsys.readouterr()
    assert main(["sot", "labels", "--from", str(write_files(partial, tmp_path / "partial")), *ARGS]) == 2
    out = capsys.readouterr().out
    assert "alert_labels.parquet: alert_id: ids of the published batch without a label (20 rows)" in out
    assert not store.exists(contract.labels_key("torus", DATE, 7, contract.MANIFEST))

    today = dt.datetime.now(dt.UTC).date()
    recent = build_owner_batch("torus", today, alerts=50, seed=1)
    args = ["--network", "torus", "--date", today.isoformat()]
    assert main(["sot", "publish", "--from", str(write_files(recent.files, tmp_path / "today")), *args]) == 0
    capsys.readouterr()
    assert main(["sot", "labels", "--from", str(write_files(recent.labels, tmp_path / "t2")), *args]) == 2
    assert "are due at" in capsys.readouterr().err
    assert not store.exists(contract.labels_key("torus", today, 7, contract.MANIFEST))


def test_the_contract_command_prints_the_machine_readable_form(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sot", "contract", "--json"]) == 0
    data = orjson.loads(capsys.readouterr().out)
    assert [c["name"] for c in data["files"]["features.parquet"]["columns"]] == contract.FEATURES.names
    assert data["network_pattern"] == contract.NETWORK_PATTERN


def test_generate_for_the_torus_network(store: FileObjectStore, tmp_path: Path) -> None:
    sizes = ["--alerts", "100", "--addresses", "1000", "--flows", "5000", "--clusters", "10"]
    assert main(["sot", "generate", "--network", "torus", "--date", "2026-01-02", *sizes]) == 0
    batch = contract.read_batch(store, contract.snapshot_key("torus", dt.date(2026, 1, 2), 7, contract.MANIFEST))
    assert set(batch.alerts.column("network").to_pylist()) == {"torus"}


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | str | None, bytes | None, Any]] = []

    def send(self, topic: str, key: bytes | str | None, value: bytes | None, headers: Any = None) -> None:
        self.sent.append((topic, key, value, headers))

    def flush(self, timeout: float = 60.0) -> None:
        pass


def test_a_replacement_is_announced_signed_by_the_operator(store: FileObjectStore, owner: OwnerBatch) -> None:
    from sot.check import check_batch
    from sot.owner import publish_owner_batch
    from streams.signing import REANNOUNCE, Signer, verify
    from streams.topics import TopicNames

    operator = Signer(Ed25519PrivateKey.generate(), "operator")
    topics, producer = TopicNames(), _Producer()

    def publish(tables: dict[str, pa.Table], **kw: Any) -> contract.Manifest:
        return publish_owner_batch(store, producer, topics, tables, network="torus", date=DATE, window_days=7, **kw)

    def checked(batch: OwnerBatch) -> dict[str, pa.Table]:
        files: dict[str, bytes | None] = {n: parquet_bytes(t) for n, t in batch.files.items()}
        return check_batch(files, network="torus", date=DATE, window_days=7).tables

    publish(checked(owner), operator=operator)
    publish(checked(build_owner_batch("torus", DATE, alerts=90, seed=8)), operator=operator, replace=True)
    (t1, _, _, unsigned), (t2, key, event, headers) = producer.sent
    assert t1 == t2 == topics.sot_batches and unsigned is None  # a first announcement needs no operator
    claim = verify(operator.public_key, REANNOUNCE, "operator", key, event, headers)
    assert str(claim.date) == DATE.isoformat()
