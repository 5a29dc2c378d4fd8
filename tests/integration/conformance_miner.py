"""A miner written from docs/miner-protocol.md alone: confluent-kafka, fastavro, pyarrow, cryptography.

No riskstream import. It scores each announced batch with a small rule over the batch's own
columns, cuts the scores into bucketed chunks, checksums and signs them, and registers itself; a
batch announced again is scored again only when an operator signed the repeat.

    python conformance_miner.py --bootstrap HOST:PORT --store DIR --schemas schemas/avro \
        --miner-id doc-miner --namespace t1. --key-file key.pem --operator-key operator=home/keys/operator.pub
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import signal
import struct
import sys
import time
import zlib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import fastavro
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # re-exported at runtime
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FILES = ("alerts.parquet", "features.parquet", "clusters.parquet", "money_flows.parquet", "address_labels.parquet")


class Avro:
    """Confluent framing (0x00, 4-byte big-endian schema id, schemaless body) with the repository's .avsc files."""

    def __init__(self, directory: Path) -> None:
        self.ids = {k: v for k, v in json.loads((directory / "ids.json").read_text()).items() if not k.startswith("_")}
        self.schemas: dict[str, Any] = {}
        for path in directory.glob("*.avsc"):
            raw = json.loads(path.read_text())
            self.schemas[f"{raw['namespace']}.{raw['name']}"] = fastavro.parse_schema(raw)

    def encode(self, name: str, record: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        out.write(b"\x00" + struct.pack(">I", self.ids[name]))
        fastavro.schemaless_writer(out, self.schemas[name], record)
        return out.getvalue()

    def has_field(self, name: str, field: str) -> bool:
        return any(f["name"] == field for f in self.schemas[name]["fields"])


class Signer:
    def __init__(self, key_file: Path, miner_id: str) -> None:
        if key_file.exists():
            loaded = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise SystemExit(f"{key_file} holds no Ed25519 key")
            self.key = loaded
        else:
            self.key = Ed25519PrivateKey.generate()
            key_file.write_bytes(
                self.key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
            key_file.chmod(0o600)
        self.miner_id = miner_id
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public_key = raw.hex()

    def headers(
        self, purpose: str, key: str | None, value: bytes | None, day: str = "", batch: str = ""
    ) -> list[tuple[str, str | bytes | None]]:
        at = str(int(time.time() * 1000))
        signature = self.key.sign(
            signed_lines(purpose, self.miner_id, day, batch, key.encode() if key else None, value, at)
        )
        headers: list[tuple[str, str | bytes | None]] = [
            ("riskstream-signer", self.miner_id.encode()),
            ("riskstream-signed-at", at.encode()),
        ]
        if day:
            headers.append(("riskstream-date", day.encode()))
        if batch:
            headers.append(("riskstream-batch", batch.encode()))
        headers.append(("riskstream-signature", signature.hex().encode()))
        return headers


def signed_lines(
    purpose: str, signer: str, day: str, batch: str, key: bytes | None, value: bytes | None, at: str
) -> bytes:
    digest = hashlib.sha256(value).hexdigest() if value is not None else "null"
    lines = ["riskstream-signature-v1", purpose, signer, day, batch, key.hex() if key else "", digest, at]
    return ("\n".join(lines) + "\n").encode()


class Reannouncements:
    """Which repeat announcements an operator signed (purpose ``reannounce``, fresh, each signature once)."""

    def __init__(self, key_files: dict[str, Path], max_age_s: float = 300.0) -> None:
        self.key_files = key_files  # read at each check: the operator's key may appear after the miner starts
        self.max_age_ms = max_age_s * 1000
        self.seen: set[bytes] = set()

    def signed(self, key: bytes | None, value: bytes | None, headers: Any) -> bool:
        found = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in headers or [] if v is not None}
        try:
            signer, at, signature = (
                found["riskstream-signer"],
                found["riskstream-signed-at"],
                found["riskstream-signature"],
            )
            public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.key_files[signer].read_text().strip()))
            raw = bytes.fromhex(signature)
            day, batch = found.get("riskstream-date", ""), found.get("riskstream-batch", "")
            public.verify(raw, signed_lines("reannounce", signer, day, batch, key, value, at))
        except (KeyError, ValueError, OSError, InvalidSignature):
            return False
        if abs(time.time() * 1000 - int(at)) > self.max_age_ms or raw in self.seen:
            return False
        self.seen.add(raw)
        return True


def read_batch(store: Path, manifest_key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    manifest = json.loads((store / manifest_key).read_bytes())
    folder = store / manifest_key.rsplit("/", 1)[0]
    tables = {}
    for name in FILES:
        data = (folder / name).read_bytes()
        entry = manifest["files"][name]
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ValueError(f"{name}: sha256 differs from the manifest")
        table = pq.read_table(io.BytesIO(data))
        if table.num_rows != entry["rows"]:
            raise ValueError(f"{name}: {table.num_rows} rows, the manifest says {entry['rows']}")
        tables[name] = table
    return manifest, tables


def score(tables: dict[str, Any]) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """A rule over the batch's own columns: the SOT's confidence and the address's anomaly scores."""
    alerts, features = tables["alerts.parquet"], tables["features.parquet"]
    where = pc.index_in(alerts["address"], value_set=features["address"].combine_chunks()).fill_null(-1)
    where = np.asarray(where.to_numpy(zero_copy_only=False))

    def column(name: str) -> np.ndarray:
        values = np.asarray(features[name].to_numpy(zero_copy_only=False), dtype=np.float64)
        out = np.where(where >= 0, values[np.maximum(where, 0)], 0.0)
        return np.nan_to_num(out)

    confidence = np.nan_to_num(np.asarray(alerts["alert_confidence_score"].to_numpy(zero_copy_only=False)))
    mixer = column("is_mixer_like") if "is_mixer_like" in features.column_names else 0.0
    raw = 0.4 * confidence + 0.2 * column("structuring_score") + 0.2 * column("behavioral_anomaly_score") + 0.2 * mixer
    alert_scores = np.clip(raw, 0.0, 1.0)
    alert_ids = [str(i) for i in alerts["alert_id"].to_pylist()]
    by_id = dict(zip(alert_ids, alert_scores, strict=True))
    clusters = tables["clusters.parquet"]
    cluster_ids = [str(i) for i in clusters["cluster_id"].to_pylist()]
    cluster_scores = np.array(
        [
            max([by_id[a] for a in related or [] if a in by_id] or [0.0])
            for related in clusters["related_alert_ids"].to_pylist()
        ]
    )
    return alert_ids, alert_scores, cluster_ids, np.clip(cluster_scores, 0.0, 1.0)


def ranks_of(ids: list[str], scores: np.ndarray) -> dict[str, int]:
    order = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i].encode()))
    return {ids[i]: rank for rank, i in enumerate(order, start=1)}


def chunks(ids: list[str], buckets: int, size: int) -> list[tuple[int, int, list[str]]]:
    by_bucket: dict[int, list[str]] = {}
    for i in ids:
        by_bucket.setdefault(zlib.crc32(i.encode()) % buckets, []).append(i)
    out = []
    for bucket in sorted(by_bucket):
        members = sorted(by_bucket[bucket], key=lambda i: i.encode())
        for n, start in enumerate(range(0, len(members), size)):
            out.append((bucket, n, members[start : start + size]))
    return out


def checksum(alerts: dict[str, float], clusters: dict[str, float]) -> str:
    digest = hashlib.sha256()
    for tag, scores in ((b"a", alerts), (b"c", clusters)):
        for entity in sorted(scores, key=lambda i: i.encode()):
            raw = entity.encode()
            digest.update(tag + struct.pack("<I", len(raw)) + raw + struct.pack("<d", float(scores[entity]) + 0.0))
    return digest.hexdigest()


def submit(args: argparse.Namespace, avro: Avro, signer: Signer, producer: Producer, manifest_key: str) -> None:
    manifest, tables = read_batch(Path(args.store), manifest_key)
    alert_ids, alert_scores, cluster_ids, cluster_scores = score(tables)
    day, batch_id = manifest["processing_date"], manifest["batch_id"]
    published = datetime.fromisoformat(manifest["published_at"])
    now = datetime.now(UTC)
    common = {
        "network": manifest["network"],
        "processing_date": date.fromisoformat(day),
        "window_days": int(manifest["window_days"]),
        "batch_id": batch_id,
        "miner_id": args.miner_id,
        "latency_ms": max((now - published).total_seconds() * 1000.0, 0.0),
        "produced_at": now,
    }
    alerts = dict(zip(alert_ids, alert_scores.tolist(), strict=True))
    clusters = dict(zip(cluster_ids, cluster_scores.tolist(), strict=True))
    ranks = ranks_of(alert_ids, alert_scores)
    topic = f"{args.namespace}scores.{args.miner_id}"
    records: list[tuple[str, bytes]] = []
    for bucket, n, members in chunks(alert_ids, args.buckets, args.chunk_size):
        value = {
            **common,
            "model_version": args.model_version,
            "bucket": bucket,
            "chunk": n,
            "alert_ids": members,
            "scores": [alerts[i] for i in members],
            "ranks": [ranks[i] for i in members],
        }
        records.append((f"{day}:{bucket:04d}", avro.encode("riskstream.AlertScoreBatch", value)))
    alert_chunks = len(records)
    for bucket, n, members in chunks(cluster_ids, args.buckets, args.chunk_size):
        value = {
            **common,
            "model_version": args.model_version,
            "bucket": bucket,
            "chunk": n,
            "cluster_ids": members,
            "scores": [clusters[i] for i in members],
        }
        records.append((f"{day}:{bucket:04d}", avro.encode("riskstream.ClusterScoreBatch", value)))
    complete = {
        **common,
        "alert_count": len(alerts),
        "cluster_count": len(clusters),
        "alert_chunks": alert_chunks,
        "cluster_chunks": len(records) - alert_chunks,
        "model_versions": {"alert_scorer": args.model_version, "cluster_scorer": args.model_version},
        "checksum": checksum(alerts, clusters),
    }
    records.append((f"{day}:complete", avro.encode("riskstream.SubmissionComplete", complete)))
    for key, data in records:
        producer.produce(topic, data, key.encode(), headers=signer.headers("score", key, data, day, batch_id))
    if producer.flush(60) != 0:
        raise RuntimeError("the broker did not acknowledge every record")
    print(f"submitted {day}: {len(records)} records, checksum {complete['checksum']}", flush=True)


def register(args: argparse.Namespace, avro: Avro, signer: Signer, producer: Producer) -> None:
    record = {
        "miner_id": args.miner_id,
        "profile": "rules-from-the-document",
        "networks": [args.network],
        "model_versions": {"alert_scorer": args.model_version},
        "registered_at": datetime.now(UTC),
    }
    if avro.has_field("riskstream.MinerRegistration", "public_key"):
        record["public_key"] = signer.public_key
    value = avro.encode("riskstream.MinerRegistration", record)
    topic = f"{args.namespace}miners.registry"
    producer.produce(topic, value, args.miner_id.encode(), headers=signer.headers("registration", args.miner_id, value))
    producer.flush(30)


def create_topic(args: argparse.Namespace) -> None:
    """Create ``scores.<miner_id>`` with the operator's partition count unless it exists."""
    topic = f"{args.namespace}scores.{args.miner_id}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    if topic in admin.list_topics(timeout=30).topics:
        return
    wanted = NewTopic(topic, num_partitions=args.partitions, replication_factor=args.replication)
    future = admin.create_topics([wanted])[topic]
    try:
        future.result(30)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("--bootstrap", "--store", "--schemas", "--miner-id", "--key-file"):
        parser.add_argument(name, required=True)
    parser.add_argument("--namespace", default="")
    parser.add_argument("--network", default="ethereum")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--replication", type=int, default=1)
    parser.add_argument("--buckets", type=int, default=16)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--model-version", default="rules-1")
    parser.add_argument("--max-batches", type=int, default=0, help="0: until SIGTERM")
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    parser.add_argument("--operator-key", action="append", default=[], help="NAME=FILE of an operator's hex public key")
    parser.add_argument("--heartbeat-s", type=float, default=30.0)
    args = parser.parse_args()
    avro = Avro(Path(args.schemas))
    signer = Signer(Path(args.key_file), args.miner_id)
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": 20,
        }
    )
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"{args.namespace}miner-{args.miner_id}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": args.session_timeout_ms,
            "partition.assignment.strategy": "range",
        }
    )
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    create_topic(args)
    register(args, avro, signer, producer)
    print(f"registered {args.miner_id} with key {signer.public_key}", flush=True)
    consumer.subscribe([f"{args.namespace}sot.batches"])
    operators = Reannouncements({n: Path(f) for n, f in (spec.split("=", 1) for spec in args.operator_key)})
    submitted: set[str] = set()  # in memory: a restarted miner re-scores what it sees again
    handled, beat = 0, time.monotonic()
    try:
        while not stopping and (args.max_batches == 0 or handled < args.max_batches):
            if "riskstream.MinerHeartbeat" in avro.schemas and time.monotonic() - beat > args.heartbeat_s:
                value = avro.encode(
                    "riskstream.MinerHeartbeat", {"miner_id": args.miner_id, "sent_at": datetime.now(UTC)}
                )
                producer.produce(
                    f"{args.namespace}miners.registry",
                    value,
                    args.miner_id.encode(),
                    headers=signer.headers("heartbeat", args.miner_id, value),
                )
                producer.poll(0)
                beat = time.monotonic()
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            event = json.loads(message.value() or b"{}")
            for record in event.get("Records", []):
                if not str(record.get("eventName", "")).startswith(("ObjectCreated:", "s3:ObjectCreated:")):
                    continue
                key = unquote_plus(record["s3"]["object"]["key"])
                parts = key.split("/")  # snapshots/<network>/<date>/<window_days>/manifest.json
                if len(parts) != 5 or (parts[0], parts[1], parts[4]) != ("snapshots", args.network, "manifest.json"):
                    continue
                if key in submitted and not operators.signed(message.key(), message.value(), message.headers()):
                    print(f"skipped {key}: announced again without an operator's signature", flush=True)
                    continue
                submit(args, avro, signer, producer, key)
                submitted.add(key)
                handled += 1
            consumer.commit(message=message, asynchronous=False)
    finally:
        consumer.close()
        tombstone = args.miner_id
        producer.produce(
            f"{args.namespace}miners.registry",
            None,
            tombstone.encode(),
            headers=signer.headers("withdrawal", tombstone, None),
        )
        producer.flush(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
