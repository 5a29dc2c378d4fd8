"""A local S3 server whose objects survive a restart: moto's S3 API, mirrored to a directory.

moto's server keeps everything in memory, so a restarted S3 server would lose the broker's
log. This process serves the same moto application and, after every request that changed an
object (PUT, POST, DELETE answered 2xx), writes that object's current bytes to
``<data>/<bucket>/<key>`` (atomically: temp file + rename) or removes it; at start it loads the
directory back. Path-style requests only (what the local broker and boto3 with an endpoint use).

    python -m streams.s3server --host 127.0.0.1 --port 9000 --data .riskstream/s3
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

_SUFFIX = ".obj"  # an object "a" and an object "a/b" can both exist: files never clash with folders
_MUTATING = frozenset({"PUT", "POST", "DELETE"})
_REGION = "us-east-1"


def object_path(root: Path, bucket: str, key: str) -> Path:
    """Where one object's bytes live: each key segment percent-quoted, ``.obj`` on the last."""
    parts = [quote(part, safe="") or "%2F" for part in key.split("/")]
    parts[-1] += _SUFFIX
    return root.joinpath(quote(bucket, safe=""), *parts)


def stored_objects(root: Path) -> Iterator[tuple[str, str, Path]]:
    """(bucket, key, file) of every object under ``root``; bucket folders may be empty."""
    if not root.is_dir():
        return
    for bucket_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        bucket = unquote(bucket_dir.name)
        for path in sorted(bucket_dir.rglob(f"*{_SUFFIX}")):
            relative = path.relative_to(bucket_dir).parts
            segments = [*relative[:-1], relative[-1][: -len(_SUFFIX)]]
            key = "/".join("" if s == "%2F" else unquote(s) for s in segments)
            yield bucket, key, path


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class DiskMirror:
    """Keeps ``root`` equal to moto's in-memory buckets, one object at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    @staticmethod
    def _backend(bucket: str) -> Any:
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        account = s3_backends.bucket_accounts.get(bucket, DEFAULT_ACCOUNT_ID)
        return s3_backends[account]["global"]  # type: ignore[index]  # moto types the key as (account, region)

    def load(self) -> int:
        """Put every stored bucket and object back into moto; returns the number of objects."""
        count = 0
        self.root.mkdir(parents=True, exist_ok=True)
        for bucket_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            self._backend(unquote(bucket_dir.name)).create_bucket(unquote(bucket_dir.name), _REGION)
        for bucket, key, path in stored_objects(self.root):
            self._backend(bucket).put_object(bucket, key, path.read_bytes())
            count += 1
        return count

    def sync_object(self, bucket: str, key: str) -> None:
        with self._lock:
            try:
                found = self._backend(bucket).get_object(bucket, key)
            except Exception:  # moto raises MissingBucket & co: then there is no such object
                found = None
            path = object_path(self.root, bucket, key)
            if found is None:
                path.unlink(missing_ok=True)
            else:
                _write_atomic(path, bytes(found.value))

    def sync_bucket(self, bucket: str) -> None:
        """After a bulk change (multi-object delete) or a bucket create/delete."""
        with self._lock:
            try:
                keys = dict(self._backend(bucket).get_bucket(bucket).keys.items())
            except Exception:  # the bucket is gone
                shutil.rmtree(self.root / quote(bucket, safe=""), ignore_errors=True)
                return
            folder = self.root / quote(bucket, safe="")
            folder.mkdir(parents=True, exist_ok=True)
            on_disk = {key for b, key, _ in stored_objects(self.root) if b == bucket}
            for key in on_disk - set(keys):
                object_path(self.root, bucket, key).unlink(missing_ok=True)
            for key in set(keys) - on_disk:
                found = self._backend(bucket).get_object(bucket, key)
                if found is not None:
                    _write_atomic(object_path(self.root, bucket, key), bytes(found.value))


def _target(environ: dict[str, Any]) -> tuple[str, str]:
    """(bucket, key) of a path-style request; key is empty for bucket-level requests."""
    path = environ.get("PATH_INFO", "")
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


class MirroringApp:
    """WSGI middleware: answer with moto, then mirror what a successful mutating request changed."""

    def __init__(self, app: Callable[..., Iterable[bytes]], mirror: DiskMirror) -> None:
        self.app = app
        self.mirror = mirror

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        bucket, key = _target(environ)
        if method not in _MUTATING or not bucket or bucket.startswith("moto-api"):
            return self.app(environ, start_response)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"], captured["exc_info"] = status, headers, exc_info
            return lambda data: None  # moto never uses the legacy write() callable

        body = b"".join(self.app(environ, capture))
        if str(captured.get("status", "500")).startswith("2"):
            query = environ.get("QUERY_STRING", "")
            if key and "partNumber=" not in query and "uploads" not in query.split("&"):
                self.mirror.sync_object(bucket, key)
            elif not key:
                self.mirror.sync_bucket(bucket)
        start_response(captured["status"], captured["headers"], captured["exc_info"])
        return [body]


def serve(host: str, port: int, data: Path) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request: the broker polls
    mirror = DiskMirror(data)
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(host, port, MirroringApp(app, mirror), threaded=True, request_handler=MotoRequestHandler)
    loaded = mirror.load()
    print(f"s3 server on http://{host}:{port}, {loaded} objects loaded from {data}", flush=True)

    def _stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.s3server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", type=Path, required=True, help="directory the objects are mirrored to")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
