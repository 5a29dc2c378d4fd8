from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest

from streams.batch import FileEntry, Manifest, snapshot_key
from streams.errors import EventError, ObjectStoreError
from streams.objectstore import FileObjectStore, open_store, parse_object_created, sha256_hex

WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_file_store_put_get_list_exists(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}")
    assert isinstance(store, FileObjectStore)
    store.put("a/b.txt", b"hello")
    store.put("a/c.txt", b"x")
    assert store.get("a/b.txt") == b"hello"
    assert store.exists("a/b.txt") and not store.exists("a/zz")
    assert store.list("a/") == ["a/b.txt", "a/c.txt"]
    with pytest.raises(ObjectStoreError, match="cannot read"):
        store.get("missing")
    with pytest.raises(ObjectStoreError, match="escapes"):
        store.put("../outside", b"")


def test_bad_store_urls_are_refused() -> None:
    with pytest.raises(ObjectStoreError, match="s3://bucket"):
        open_store("ftp://x")
    with pytest.raises(ObjectStoreError, match="no bucket"):
        open_store("s3://")


def test_object_created_event_has_the_aws_shape_and_parses_back(tmp_path: Path) -> None:
    store = FileObjectStore(tmp_path / "bucket")
    key = "snapshots/ethereum/2026-01-02/7/manifest.json"
    event = orjson.loads(store.object_created_event(key, 12, "abc", WHEN))
    record = event["Records"][0]
    assert record["eventSource"] == "aws:s3"
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["bucket"]["name"] == "bucket"
    assert record["eventTime"] == "2026-01-02T03:04:05.000Z"
    [parsed] = parse_object_created(orjson.dumps(event))
    assert store.key_of(parsed) == key
    assert parsed.size == 12 and parsed.event_time == WHEN


def test_keys_are_url_encoded_in_events_like_s3() -> None:
    store = FileObjectStore(Path("/tmp/b"))
    [parsed] = parse_object_created(store.object_created_event("a b+c.json", 1, "e", WHEN))
    assert parsed.key == "a b+c.json"


@pytest.mark.parametrize("data", [b"", b"{}", b"[1]", b'{"Records": [{"eventName": "ObjectCreated:Put"}]}', None])
def test_bad_events_raise_event_error(data: bytes | None) -> None:
    with pytest.raises(EventError):
        parse_object_created(data)


def test_removal_events_are_ignored() -> None:
    body = {"Records": [{"eventName": "ObjectRemoved:Delete", "s3": {}}]}
    assert parse_object_created(orjson.dumps(body)) == []


def test_manifest_round_trips_and_rejects_garbage() -> None:
    manifest = Manifest(
        "ethereum", dt.date(2026, 1, 2), 7, "b1", WHEN, {"alerts.parquet": FileEntry(3, sha256_hex(b"x"), 1)}
    )
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert snapshot_key("ethereum", dt.date(2026, 1, 2), 7, "alerts.parquet").startswith(
        "snapshots/ethereum/2026-01-02/7/"
    )
    with pytest.raises(EventError, match="manifest"):
        Manifest.from_json(b'{"network": 1}')
