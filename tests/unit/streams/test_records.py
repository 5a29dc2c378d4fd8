"""Every ``.avsc`` has its dataclass in ``streams.records``, with the same fields, and round-trips through Avro."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import pytest

from streams.codec import AvroCodec
from streams.records import RECORD_TYPES, AvroRecord, EnsembleBatch, MinerError, from_avro
from streams.schema_registry import SCHEMA_DIR, FileSchemaRegistry

CODEC = AvroCodec(FileSchemaRegistry.default())
SCHEMAS = {f"{s['namespace']}.{s['name']}": s for s in (json.loads(p.read_text()) for p in SCHEMA_DIR.glob("*.avsc"))}


def _value(kind: Any, salt: int) -> Any:
    """A valid value of an Avro type, varied by ``salt`` so no two fields look alike."""
    if isinstance(kind, list):  # a union: the non-null branch
        return _value(next(k for k in kind if k != "null"), salt)
    if isinstance(kind, dict):
        logical, base = kind.get("logicalType"), kind["type"]
        if logical == "date":
            return dt.date(2026, 1, 1) + dt.timedelta(days=salt)
        if logical == "timestamp-millis":
            return dt.datetime(2026, 1, 2, 3, 4, 5, 6000 + salt * 1000, tzinfo=dt.UTC)
        if base == "array":
            return [_value(kind["items"], salt + i) for i in range(2)]
        if base == "map":
            return {f"k{i}": _value(kind["values"], salt + i) for i in range(2)}
        if base == "record":
            return _record(kind, salt)
        return _value(base, salt)
    return {
        "string": f"s{salt}",
        "int": 10 + salt,
        "long": 1000 + salt,
        "double": 0.25 + salt,
        "boolean": salt % 2 == 0,
    }[kind]


def _record(schema: dict[str, Any], salt: int = 0) -> dict[str, Any]:
    return {f["name"]: _value(f["type"], salt + i) for i, f in enumerate(schema["fields"])}


def test_every_schema_has_its_dataclass_and_no_other() -> None:
    assert set(RECORD_TYPES) == set(SCHEMAS)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_dataclass_has_the_schema_fields_and_defaults(name: str) -> None:
    cls = RECORD_TYPES[name]
    assert name == cls.NAME and dataclasses.is_dataclass(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert list(fields) == [f["name"] for f in SCHEMAS[name]["fields"]]
    for f in SCHEMAS[name]["fields"]:
        ours = fields[f["name"]]
        if "default" not in f:
            assert ours.default is dataclasses.MISSING and ours.default_factory is dataclasses.MISSING, f["name"]
            continue
        default = ours.default_factory() if ours.default_factory is not dataclasses.MISSING else ours.default
        assert (list(default) if isinstance(default, tuple) else default) == f["default"], f["name"]
    params = cls.__dataclass_params__
    assert params.frozen and "__slots__" in cls.__dict__


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_a_record_round_trips_through_avro_bytes(name: str) -> None:
    value = CODEC.encode(name, _record(SCHEMAS[name]))
    decoded = CODEC.decode(value)
    assert decoded.name == name
    typed = from_avro(name, decoded.record)
    assert isinstance(typed, RECORD_TYPES[name])
    assert typed.to_avro() == decoded.record
    assert CODEC.encode(typed.NAME, typed.to_avro()) == value  # the same bytes again
    assert RECORD_TYPES[name].from_avro(typed.to_avro()) == typed


def test_sub_records_are_dataclasses_and_defaults_fill_absent_fields() -> None:
    record = _record(SCHEMAS["riskstream.EnsembleBatch"])
    for absent in ("status", "reason", "priors"):
        del record[absent]
    batch = EnsembleBatch.from_avro(record)
    assert (batch.status, batch.reason, batch.priors) == ("accepted", "", "history")
    assert all(isinstance(m, AvroRecord) for m in batch.miners) and isinstance(batch.miners, tuple)
    assert batch.miners[0].to_avro() == record["miners"][0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        batch.version = 2  # type: ignore[misc]


def test_optional_fields_take_null() -> None:
    record = {**_record(SCHEMAS["riskstream.MinerError"]), "network": None, "processing_date": None}
    error = MinerError.from_avro(CODEC.decode(CODEC.encode(MinerError.NAME, record)).record)
    assert error.network is None and error.processing_date is None
    assert error.to_avro() == record


def test_a_name_no_schema_has_is_refused() -> None:
    with pytest.raises(KeyError):
        from_avro("riskstream.Nothing", {})


def test_no_other_module_spells_a_record_name() -> None:
    import re

    root = SCHEMA_DIR.parent.parent
    short = [s.rsplit(".", 1)[1] for s in SCHEMAS if s != "riskstream.MinerError"]  # MinerError: also an exception
    spelled = re.compile(r"riskstream\.(" + "|".join(s.rsplit(".", 1)[1] for s in SCHEMAS) + r")\b")
    quoted = re.compile(r"[\"'](" + "|".join(short) + r")[\"']")
    packages = ["sot", "miner", "validator", "gateway", "warehouse", "streams", "simulation", "ops", "bench"]
    found = [
        f"{path.relative_to(root)}:{n}"
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
        if path != root / "streams" / "records.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if spelled.search(line) or quoted.search(line)
    ]
    assert found == [], "record names belong in streams/records.py"


def test_an_optional_sub_record_may_be_null() -> None:
    from streams.records import PartialMarker, RoundPartial

    record = {**_record(SCHEMAS["riskstream.RoundPartial"]), "marker": None}
    partial = RoundPartial.from_avro(CODEC.decode(CODEC.encode(RoundPartial.NAME, record)).record)
    assert partial.marker is None and partial.to_avro() == record
    marked = RoundPartial.from_avro(_record(SCHEMAS["riskstream.RoundPartial"]))
    assert isinstance(marked.marker, PartialMarker)
