"""Object store: ``s3://bucket[/prefix]`` through boto3 (AWS, MinIO, moto) or ``file://dir``.

Keys are relative to the store's prefix. ``object_created_event`` builds the AWS-shaped
S3 event notification for a key, and ``parse_object_created`` reads one back (also what
MinIO publishes to Kafka), so a consumer can turn an event into a key of its own store.

    store = open_store("s3://sot/riskstream", endpoint_url="http://127.0.0.1:9000")
    store.put("snapshots/eth/2026-01-02/7/manifest.json", data)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote_plus, unquote_plus

import orjson

from streams.errors import EventError, ObjectStoreError
from streams.settings import StackSettings


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class ObjectCreated:
    """One 'object created' record of an S3 event notification."""

    bucket: str
    key: str  # full key in the bucket (prefix included), as S3 reports it
    size: int
    etag: str
    event_time: dt.datetime


class ObjectStore(Protocol):
    url: str

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]: ...

    def delete(self, key: str) -> None: ...

    def object_created_event(self, key: str, size: int, etag: str, when: dt.datetime) -> bytes: ...

    def key_of(self, event: ObjectCreated) -> str: ...


class FileObjectStore:
    """A directory as an object store; the bucket name in events is the directory's name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"file://{root}"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            msg = f"key {key!r} escapes the store root"
            raise ObjectStoreError(msg)
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # readers never see half a file
        except OSError as exc:
            msg = f"cannot write {self.url}/{key}: {exc}"
            raise ObjectStoreError(msg) from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as exc:
            msg = f"cannot read {self.url}/{key}: {exc.strerror or exc}"
            raise ObjectStoreError(msg) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.exists():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and not Path(k).name.startswith("."))

    def delete(self, key: str) -> None:
        """Remove an object (absent is fine) and the folders it leaves empty."""
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
            for parent in path.parents:
                if parent == self.root.resolve() or not parent.is_relative_to(self.root.resolve()):
                    break
                parent.rmdir()  # raises once a folder still holds something
        except OSError as exc:
            if path.exists():
                msg = f"cannot delete {self.url}/{key}: {exc}"
                raise ObjectStoreError(msg) from exc

    def object_created_event(self, key: str, size: int, etag: str, when: dt.datetime) -> bytes:
        return build_object_created_event(self.root.name or "local", key, size, etag, when)

    def key_of(self, event: ObjectCreated) -> str:
        return event.key


class S3ObjectStore:
    """An S3 bucket (optionally under a prefix) through boto3; works with MinIO and moto."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        self._s3 = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60),
        )
        from botocore.exceptions import BotoCoreError, ClientError

        self._errors: tuple[type[Exception], ...] = (BotoCoreError, ClientError)

    def _fail(self, action: str, key: str, exc: Exception) -> ObjectStoreError:
        return ObjectStoreError(f"cannot {action} s3://{self.bucket}/{self.prefix}{key}: {exc}")

    def put(self, key: str, data: bytes) -> None:
        try:
            self._s3.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)
        except self._errors as exc:
            raise self._fail(action="write", key=key, exc=exc) from exc

    def get(self, key: str) -> bytes:
        try:
            body: bytes = self._s3.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        except self._errors as exc:
            raise self._fail(action="read", key=key, exc=exc) from exc
        return body

    def exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except self._errors as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise self._fail(action="stat", key=key, exc=exc) from exc
        return True

    def list(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
            for page in pages:
                keys.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", []))
        except self._errors as exc:
            raise self._fail(action="list", key=prefix, exc=exc) from exc
        return sorted(keys)

    def delete(self, key: str) -> None:
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=self.prefix + key)
        except self._errors as exc:
            raise self._fail(action="delete", key=key, exc=exc) from exc

    def create_bucket(self) -> None:
        """Create the bucket if it does not exist (local stacks and tests)."""
        try:
            self._s3.create_bucket(Bucket=self.bucket)
        except self._errors as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise self._fail(action="create bucket", key="", exc=exc) from exc

    def object_created_event(self, key: str, size: int, etag: str, when: dt.datetime) -> bytes:
        return build_object_created_event(self.bucket, self.prefix + key, size, etag, when)

    def key_of(self, event: ObjectCreated) -> str:
        if event.bucket != self.bucket or not event.key.startswith(self.prefix):
            msg = f"event for s3://{event.bucket}/{event.key} is outside {self.url}"
            raise EventError(msg)
        return event.key[len(self.prefix) :]


def open_store(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> FileObjectStore | S3ObjectStore:
    """Open ``s3://bucket[/prefix]`` or ``file://dir`` (relative or absolute)."""
    if url.startswith("file://"):
        return FileObjectStore(Path(url.removeprefix("file://") or "."))
    if url.startswith("s3://"):
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            msg = f"object store url {url!r} has no bucket"
            raise ObjectStoreError(msg)
        return S3ObjectStore(
            bucket,
            prefix,
            endpoint_url=endpoint_url,
            region=region,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
        )
    msg = f"object store url must be s3://bucket[/prefix] or file://dir: {url!r}"
    raise ObjectStoreError(msg)


def open_stack_store(stack: StackSettings, *, private: bool = False) -> FileObjectStore | S3ObjectStore:
    """The deployment's object store (or, with ``private``, the one only the SOT and validator read)."""
    secret = stack.s3_secret_access_key
    url = stack.private_url if private else stack.object_store_url
    return open_store(
        url,
        endpoint_url=stack.s3_endpoint_url,
        region=stack.s3_region,
        access_key_id=stack.s3_access_key_id,
        secret_access_key=secret.get_secret_value() if secret is not None else None,
    )


def build_object_created_event(bucket: str, key: str, size: int, etag: str, when: dt.datetime) -> bytes:
    """The AWS S3 event notification (one ``ObjectCreated:Put`` record) as JSON bytes."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "riskstream"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": uuid.uuid5(uuid.NAMESPACE_URL, f"{bucket}/{key}/{etag}").hex},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "riskstream",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "riskstream"}, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {
                "key": quote_plus(key, safe="/"),
                "size": size,
                "eTag": etag,
                "sequencer": f"{int(when.timestamp() * 1000):016X}",
            },
        },
    }
    return orjson.dumps({"EventName": "s3:ObjectCreated:Put", "Key": f"{bucket}/{key}", "Records": [record]})


def parse_object_created(data: bytes | None) -> list[ObjectCreated]:
    """The object-created records of an S3 event notification (AWS or MinIO shape)."""
    try:
        body: Any = orjson.loads(data or b"")
        records = body["Records"]
        created = []
        for record in records:
            if not str(record.get("eventName", "")).startswith(("ObjectCreated:", "s3:ObjectCreated:")):
                continue
            s3 = record["s3"]
            created.append(
                ObjectCreated(
                    bucket=s3["bucket"]["name"],
                    key=unquote_plus(s3["object"]["key"]),  # S3 url-encodes keys in events
                    size=int(s3["object"].get("size", 0)),
                    etag=str(s3["object"].get("eTag", "")),
                    event_time=dt.datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00")),
                )
            )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        msg = f"not an S3 event notification: {type(exc).__name__}: {exc}"
        raise EventError(msg) from exc
    return created
