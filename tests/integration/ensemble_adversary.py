"""A dishonest miner as a stranger would write it: confluent-kafka, fastavro, pyarrow, cryptography, no riskstream code.

It follows docs/miner-protocol.md (registration with its own Ed25519 key, heartbeats, bucketed
signed chunks, checksum, completion marker) and cheats in one way per ``kind``:

- ``noisy-copy``: an honest miner's published scores plus Gaussian noise, with every time it
  writes itself (``produced_at``, ``latency_ms``, the signature's signed-at) set before the
  honest miner's, so that by its own account it submitted first;
- ``transform``: a monotone transform (square root) of an honest miner's scores;
- ``blend``: the mean of several honest miners' scores;
- ``dies``: its own scores, but it is killed after sending half of its chunks (no marker);
- ``out-of-range``: its own scores, stretched outside [0, 1].

The honest scores are read from the honest miners' topics (readable by anyone) once their
completion marker is there.

    python ensemble_adversary.py --bootstrap HOST:PORT --namespace t1. --store DIR --miner-id copy-1 \
        --dates 2026-01-10,2026-01-11 noisy-copy --source honest-a
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import signal
import struct
import sys
import threading
import time
import uuid
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import fastavro
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # re-exported at runtime
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "avro"
ALERTS, CLUSTERS, COMPLETE = (
    "riskstream.AlertScoreBatch",
    "riskstream.ClusterScoreBatch",
    "riskstream.SubmissionComplete",
)


MIXES = {  # the two miners with their own scores use their own rules
    "dies": {"graph_anomaly_score": 0.5, "velocity_score": 0.3, "is_mixer_like": 0.2},
    "out-of-range": {"confidence": 0.5, "structuring_score": 0.25, "behavioral_anomaly_score": 0.25},
}


class Avro:
    """Confluent framing (0x00, 4-byte big-endian schema id, schemaless body) over the published .avsc files."""

    def __init__(self, directory: Path) -> None:
        ids: dict[str, Any] = json.loads((directory / "ids.json").read_text())
        self.ids: dict[str, int] = {k: int(v) for k, v in ids.items() if not k.startswith("_")}
        self.names = {v: k for k, v in self.ids.items()}
        named: dict[str, Any] = {}
        self.schemas: dict[str, Any] = {}
        for path in sorted(directory.glob("*.avsc")):
            schema: dict[str, Any] = fastavro.parse_schema(json.loads(path.read_text()), named)  # type: ignore[assignment]
            self.schemas[schema["name"]] = schema

    def encode(self, name: str, record: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        out.write(b"\x00" + struct.pack(">I", self.ids[name]))
        fastavro.schemaless_writer(out, self.schemas[name], record)
        return out.getvalue()

    def decode(self, value: bytes) -> tuple[str, dict[str, Any]] | None:
        if len(value) < 5 or value[0] != 0:
            return None
        name = self.names.get(struct.unpack(">I", value[1:5])[0])
        if name is None:
            return None
        schema = self.schemas[name]
        record: dict[str, Any] = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, schema)  # type: ignore[assignment]
        return name, record


class Signer:
    """The miner's own key; every record is signed as docs/miner-protocol.md section 6 says."""

    def __init__(self, miner_id: str) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.miner_id = miner_id
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public_key = raw.hex()

    def headers(
        self, purpose: str, key: str, value: bytes | None, day: str = "", batch: str = "", at_ms: int | None = None
    ) -> list[tuple[str, bytes]]:
        at = str(int(time.time() * 1000) if at_ms is None else at_ms)
        digest = hashlib.sha256(value).hexdigest() if value is not None else "null"
        lines = ["riskstream-signature-v1", purpose, self.miner_id, day, batch, key.encode().hex(), digest, at]
        signature = self.key.sign(("\n".join(lines) + "\n").encode())
        headers = [("riskstream-signer", self.miner_id.encode()), ("riskstream-signed-at", at.encode())]
        if day:
            headers.append(("riskstream-date", day.encode()))
        if batch:
            headers.append(("riskstream-batch", batch.encode()))
        return [*headers, ("riskstream-signature", signature.hex().encode())]


def say(text: str) -> None:
    print(f"{datetime.now(UTC).isoformat(timespec='seconds')} {text}", flush=True)


def tail(bootstrap: str, topic: str, until: Any, timeout_s: float, what: str) -> Any:
    """Read ``topic`` from the beginning, feeding every record to ``until`` until it returns a value."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"stranger-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False})  # fmt: skip
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is not None and meta.error is None and meta.partitions:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"no topic {topic}")
            time.sleep(1.0)
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        while time.monotonic() < deadline:
            for m in consumer.consume(1000, timeout=0.5):
                if m.error() is None:
                    found = until(m)
                    if found is not None:
                        return found
    finally:
        consumer.close()
    raise TimeoutError(f"{what}: not seen on {topic} within {timeout_s:.0f}s")


class Submission:
    """The latest chunk per (kind, bucket, chunk) of one date on one miner's topic, and its marker."""

    def __init__(self, avro: Avro, day: str) -> None:
        self.avro, self.day = avro, day
        self.chunks: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.marker: dict[str, Any] | None = None

    def __call__(self, m: Message) -> Submission | None:
        decoded = self.avro.decode(m.value() or b"")
        if decoded is None:
            return None
        name, record = decoded
        if record["processing_date"].isoformat() != self.day:
            return None
        if name == COMPLETE:
            self.marker = record
        elif name in (ALERTS, CLUSTERS):
            self.chunks[(name, record["bucket"], record["chunk"])] = record
        return self if self.complete() else None

    def complete(self) -> bool:
        if self.marker is None:
            return False
        alerts = sum(len(r["alert_ids"]) for (n, _, _), r in self.chunks.items() if n == ALERTS)
        clusters = sum(len(r["cluster_ids"]) for (n, _, _), r in self.chunks.items() if n == CLUSTERS)
        return (alerts, clusters) == (self.marker["alert_count"], self.marker["cluster_count"])

    def scores(self, name: str) -> dict[str, float]:
        ids = "alert_ids" if name == ALERTS else "cluster_ids"
        out: dict[str, float] = {}
        for (n, _, _), record in self.chunks.items():
            if n == name:
                out.update(zip(record[ids], record["scores"], strict=True))
        return out


def batch_manifest(args: argparse.Namespace, day: str) -> dict[str, Any]:
    """Wait for the announcement of ``day`` on sot.batches; the manifest it points at, from the store."""

    def announced(m: Message) -> str | None:
        try:
            event = json.loads(m.value() or b"")
        except ValueError:
            return None
        for record in event.get("Records", []):
            if not str(record.get("eventName", "")).startswith(("ObjectCreated:", "s3:ObjectCreated:")):
                continue
            key = unquote_plus(record["s3"]["object"]["key"])
            parts = key.split("/")  # snapshots/<network>/<date>/<window_days>/manifest.json
            if len(parts) == 5 and parts[0] == "snapshots" and parts[1:3] == [args.network, day]:
                return key
        return None

    key = tail(args.bootstrap, f"{args.namespace}sot.batches", announced, args.timeout, f"the batch of {day}")
    manifest: dict[str, Any] = json.loads((Path(args.store) / key).read_bytes())
    manifest["folder"] = Path(args.store) / key.rsplit("/", 1)[0]
    return manifest


def own_scores(manifest: dict[str, Any], mix: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """A rule over the batch's own columns: ``mix`` weighs the SOT's confidence and the address's features."""
    alerts = pq.read_table(manifest["folder"] / "alerts.parquet")
    features = pq.read_table(manifest["folder"] / "features.parquet")
    where = pc.index_in(alerts["address"], value_set=features["address"].combine_chunks()).fill_null(-1)
    where = np.asarray(where.to_numpy(zero_copy_only=False))

    def column(name: str) -> np.ndarray:
        values = np.asarray(features[name].to_numpy(zero_copy_only=False), dtype=np.float64)
        return np.nan_to_num(np.where(where >= 0, values[np.maximum(where, 0)], 0.0))

    confidence = np.nan_to_num(np.asarray(alerts["alert_confidence_score"].to_numpy(zero_copy_only=False)))
    raw = sum(w * (confidence if name == "confidence" else column(name)) for name, w in mix.items())
    raw = np.clip(np.asarray(raw, dtype=np.float64), 0.0, 1.0)
    by_alert = dict(zip([str(i) for i in alerts["alert_id"].to_pylist()], raw.tolist(), strict=True))
    clusters = pq.read_table(manifest["folder"] / "clusters.parquet")
    by_cluster = {
        str(c): max([by_alert[a] for a in related or [] if a in by_alert] or [0.0])
        for c, related in zip(
            clusters["cluster_id"].to_pylist(), clusters["related_alert_ids"].to_pylist(), strict=True
        )  # fmt: skip
    }
    return by_alert, by_cluster


def bucketed(ids: list[str], buckets: int, size: int) -> list[tuple[int, int, list[str]]]:
    by_bucket: dict[int, list[str]] = {}
    for i in ids:
        by_bucket.setdefault(zlib.crc32(i.encode()) % buckets, []).append(i)
    out = []
    for bucket in sorted(by_bucket):
        members = sorted(by_bucket[bucket], key=lambda i: i.encode())
        out += [(bucket, n, members[s : s + size]) for n, s in enumerate(range(0, len(members), size))]
    return out


def checksum(alerts: dict[str, float], clusters: dict[str, float]) -> str:
    digest = hashlib.sha256()
    for tag, scores in ((b"a", alerts), (b"c", clusters)):
        for entity in sorted(scores, key=lambda i: i.encode()):
            raw = entity.encode()
            digest.update(tag + struct.pack("<I", len(raw)) + raw + struct.pack("<d", float(scores[entity]) + 0.0))
    return digest.hexdigest()


class Adversary:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.avro = Avro(Path(args.schemas))
        self.signer = Signer(args.miner_id)
        self.topic = f"{args.namespace}scores.{args.miner_id}"
        self.registry = f"{args.namespace}miners.registry"
        self.producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "enable.idempotence": True,
                                  "partitioner": "murmur2_random", "linger.ms": 20})  # fmt: skip
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.rng = np.random.default_rng(args.seed)

    def produce(self, topic: str, key: str, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        with self.lock:  # the heartbeat thread shares the producer
            self.producer.produce(topic, value, key.encode(), headers=[(k, v) for k, v in headers])
            self.producer.poll(0)

    def flush(self) -> None:
        with self.lock:
            if self.producer.flush(60) != 0:
                raise RuntimeError("the broker did not acknowledge every record")

    def create_topic(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.args.bootstrap})
        if self.topic in admin.list_topics(timeout=30).topics:
            return
        future = admin.create_topics([NewTopic(self.topic, num_partitions=self.args.partitions,
                                               replication_factor=1)])[self.topic]  # fmt: skip
        try:
            future.result(30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise

    def register(self) -> None:
        record = {"miner_id": self.args.miner_id, "profile": self.args.kind, "networks": [self.args.network],
                  "model_versions": {"alert_scorer": "v1"}, "registered_at": datetime.now(UTC),
                  "public_key": self.signer.public_key}  # fmt: skip
        value = self.avro.encode("riskstream.MinerRegistration", record)
        self.produce(self.registry, self.args.miner_id, value, self.signer.headers("registration", self.args.miner_id,
                                                                                   value))  # fmt: skip
        self.flush()
        threading.Thread(target=self.beat, daemon=True).start()

    def beat(self) -> None:
        while not self.stopping.wait(self.args.heartbeat_s):
            value = self.avro.encode("riskstream.MinerHeartbeat", {"miner_id": self.args.miner_id,
                                                                   "sent_at": datetime.now(UTC)})  # fmt: skip
            self.produce(self.registry, self.args.miner_id, value,
                         self.signer.headers("heartbeat", self.args.miner_id, value))  # fmt: skip

    def sources(self, day: str) -> list[Submission]:
        found = []
        for source in self.args.source:
            topic = f"{self.args.namespace}scores.{source}"
            found.append(tail(self.args.bootstrap, topic, Submission(self.avro, day), self.args.timeout,
                              f"the submission of {source} for {day}"))  # fmt: skip
        return found

    def cheat(self, day: str, manifest: dict[str, Any]) -> tuple[dict[str, float], dict[str, float], dict[str, Any]]:
        """The scores this adversary sends for ``day`` and the times it claims."""
        kind = self.args.kind
        now = datetime.now(UTC)
        claims = {"produced_at": now, "latency_ms": max((now - datetime.fromisoformat(manifest["published_at"]))
                                                        .total_seconds() * 1000.0, 0.0)}  # fmt: skip
        if kind in ("dies", "out-of-range"):
            alerts, clusters = own_scores(manifest, MIXES[kind])
            if kind == "out-of-range":  # stretched: the riskiest above 1, the safest below 0
                alerts = {k: 1.6 * v - 0.2 for k, v in alerts.items()}
                clusters = {k: 1.6 * v - 0.2 for k, v in clusters.items()}
            return alerts, clusters, claims
        subs = self.sources(day)
        copied = [(s.scores(ALERTS), s.scores(CLUSTERS)) for s in subs]
        alert_ids, cluster_ids = sorted(copied[0][0]), sorted(copied[0][1])
        if kind == "noisy-copy":
            (a, c), marker = copied[0], subs[0].marker
            assert marker is not None
            noisy = [{k: float(np.clip(v + self.rng.normal(0.0, self.args.sigma), 0.0, 1.0)) for k, v in x.items()}
                     for x in (a, c)]  # fmt: skip
            claims = {"produced_at": marker["produced_at"] - timedelta(seconds=60),  # "I was a minute earlier"
                      "latency_ms": max(marker["latency_ms"] - 60_000.0, 0.0)}  # fmt: skip
            return noisy[0], noisy[1], claims
        if kind == "transform":
            a, c = copied[0]
            return {k: float(np.sqrt(v)) for k, v in a.items()}, {k: float(np.sqrt(v)) for k, v in c.items()}, claims
        # blend: the mean of every source's score (an id one source lacks is skipped by none: sources align)
        alerts = {k: float(np.mean([x[0][k] for x in copied])) for k in alert_ids}
        clusters = {k: float(np.mean([x[1][k] for x in copied])) for k in cluster_ids}
        return alerts, clusters, claims

    def submit(self, day: str) -> None:
        manifest = batch_manifest(self.args, day)
        alerts, clusters, claims = self.cheat(day, manifest)
        batch_id = manifest["batch_id"]
        at_ms = int(claims["produced_at"].timestamp() * 1000)
        common = {"network": manifest["network"], "processing_date": date.fromisoformat(day),
                  "window_days": int(manifest["window_days"]), "batch_id": batch_id, "miner_id": self.args.miner_id,
                  **claims}  # fmt: skip
        ids = sorted(alerts, key=lambda i: (-alerts[i], i.encode()))
        ranks = {i: r for r, i in enumerate(ids, start=1)}
        records: list[tuple[str, bytes]] = []
        for bucket, n, members in bucketed(list(alerts), self.args.buckets, self.args.chunk_size):
            value = {**common, "model_version": "v1", "bucket": bucket, "chunk": n, "alert_ids": members,
                     "scores": [alerts[i] for i in members], "ranks": [ranks[i] for i in members]}  # fmt: skip
            records.append((f"{day}:{bucket:04d}", self.avro.encode(ALERTS, value)))
        alert_chunks = len(records)
        for bucket, n, members in bucketed(list(clusters), self.args.buckets, self.args.chunk_size):
            value = {**common, "model_version": "v1", "bucket": bucket, "chunk": n, "cluster_ids": members,
                     "scores": [clusters[i] for i in members]}  # fmt: skip
            records.append((f"{day}:{bucket:04d}", self.avro.encode(CLUSTERS, value)))
        marker = {**common, "alert_count": len(alerts), "cluster_count": len(clusters), "alert_chunks": alert_chunks,
                  "cluster_chunks": len(records) - alert_chunks,
                  "model_versions": {"alert_scorer": "v1", "cluster_scorer": "v1"},
                  "checksum": checksum(alerts, clusters)}  # fmt: skip
        if self.args.kind == "dies":
            records = records[: alert_chunks // 2]
        else:
            records.append((f"{day}:complete", self.avro.encode(COMPLETE, marker)))
        for key, data in records:
            self.produce(self.topic, key, data, self.signer.headers("score", key, data, day, batch_id, at_ms))
        self.flush()
        say(f"{self.args.miner_id} ({self.args.kind}) sent {len(records)} records for {day}")
        if self.args.kind == "dies":
            os.kill(os.getpid(), signal.SIGKILL)  # mid-submission: no marker, no heartbeat, no withdrawal

    def run(self) -> int:
        self.create_topic()
        self.register()
        say(f"registered {self.args.miner_id} ({self.args.kind}) with key {self.signer.public_key}")
        try:
            for day in self.args.dates.split(","):
                self.submit(day)
            while True:  # keep beating until SIGTERM: a live miner that completed is done for the date, not gone
                time.sleep(0.5)
        finally:
            self.stopping.set()
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--bootstrap", "--store", "--miner-id", "--dates"):
        parser.add_argument(name, required=True)
    parser.add_argument("--namespace", default="")
    parser.add_argument("--schemas", default=str(SCHEMAS))
    parser.add_argument("--network", default="ethereum")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--buckets", type=int, default=16)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--heartbeat-s", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--sigma", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("kind", choices=["noisy-copy", "transform", "blend", "dies", "out-of-range"])
    parser.add_argument("--source", action="append", default=[], help="honest miner(s) to copy")
    args = parser.parse_args(argv)
    if args.kind in ("noisy-copy", "transform", "blend") and not args.source:
        parser.error(f"{args.kind} needs --source")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return Adversary(args).run()


if __name__ == "__main__":
    sys.exit(main())
