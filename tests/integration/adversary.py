"""An outsider on the broker: plain confluent-kafka, fastavro and an Ed25519 library, no riskstream code.

Each attack is a subcommand; every record it writes is one a stranger can write on an open
broker. Schemas are read from the repository's .avsc files (they are public), framed the
Confluent way (byte 0, 4-byte schema id, Avro body).

    python adversary.py --bootstrap HOST:PORT --namespace t1. impersonate --miner miner-a --date 2026-01-10
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import struct
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import Consumer, Producer, TopicPartition
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "avro"
IDS: dict[str, int] = {k: v for k, v in json.loads((SCHEMAS / "ids.json").read_text()).items() if k != "_doc"}
PARSED: dict[str, Any] = {}
_named: dict[str, Any] = {}
for _path in sorted(SCHEMAS.glob("*.avsc")):
    _schema: dict[str, Any] = fastavro.parse_schema(json.loads(_path.read_text()), _named)  # type: ignore[assignment]  # a record schema parses to a dict
    PARSED[_schema["name"]] = _schema
BY_ID = {v: k for k, v in IDS.items()}
KEY = Ed25519PrivateKey.generate()  # the attacker's own key: valid signatures, wrong signer


def encode(name: str, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    out.write(struct.pack(">bI", 0, IDS[name]))
    fastavro.schemaless_writer(out, PARSED[name], record)
    return out.getvalue()


def decode(value: bytes) -> tuple[str, dict[str, Any]]:
    _, schema_id = struct.unpack(">bI", value[:5])
    name = BY_ID[schema_id]
    record: dict[str, Any] = fastavro.schemaless_reader(io.BytesIO(value[5:]), PARSED[name], PARSED[name])  # type: ignore[assignment]  # a record reads as a dict
    return name, record


def sign(
    purpose: str, signer: str, key: bytes | None, value: bytes | None, date: str = "", batch: str = ""
) -> list[tuple[str, str | bytes | None]]:
    """Signature headers in the documented format, made with the attacker's key (so they never verify)."""
    at = int(time.time() * 1000)
    digest = hashlib.sha256(value).hexdigest() if value is not None else "null"
    lines = ["riskstream-signature-v1", purpose, signer, date, batch, (key or b"").hex(), digest, str(at)]
    signature = KEY.sign(("\n".join(lines) + "\n").encode()).hex()
    headers = [("riskstream-signer", signer.encode()), ("riskstream-signed-at", str(at).encode())]
    if date:
        headers.append(("riskstream-date", date.encode()))
    if batch:
        headers.append(("riskstream-batch", batch.encode()))
    return [*headers, ("riskstream-signature", signature.encode())]


def public_hex() -> str:
    return KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def read_topic(bootstrap: str, topic: str, idle_s: float = 3.0, timeout_s: float = 60.0) -> list[Any]:
    """Every record of ``topic`` from the beginning until it goes quiet."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"adv-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False})  # fmt: skip
    found: list[Any] = []
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return []
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        deadline, quiet = time.monotonic() + timeout_s, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet < idle_s:
            for m in consumer.consume(1000, timeout=0.5):
                if m.error() is None:
                    found.append(m)
                    quiet = time.monotonic()
    finally:
        consumer.close()
    return found


class Attack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ns = args.namespace
        self.producer = Producer({"bootstrap.servers": args.bootstrap})
        self.sent = 0

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        self.producer.produce(self.ns + topic, key=key, value=value, headers=headers or [])
        self.sent += 1

    def done(self) -> int:
        assert self.producer.flush(30) == 0, "undelivered records"
        print(json.dumps({"attack": self.args.attack, "sent": self.sent}))
        return 0

    # -- the attacks ---------------------------------------------------------------------------

    def impersonate(self) -> int:
        """A complete junk submission on an honest miner's topic, under its name: unsigned, then self-signed.

        With ``--copy-from-topic`` the ids (and the honest miner's own signed records, resent as they
        are) come from the honest submission already on the topic; else the ids are made up.
        """
        miner, date = self.args.miner, self.args.date
        rng = random.Random(7)
        honest = [m for m in read_topic(self.args.bootstrap, f"{self.ns}scores.{miner}")] if self.args.after else []
        chunks = []
        for m in honest:
            name, record = decode(m.value())
            if record["processing_date"].isoformat() != date:
                continue
            self.send(f"scores.{miner}", m.key(), m.value(), list(m.headers() or []))  # an exact copy, resent
            if name == "riskstream.AlertScoreBatch":
                chunks.append((m.key(), record))
        if not chunks:  # before the honest miner: made-up ids in the batch's layout
            base = {"network": "ethereum", "processing_date": _date(date), "window_days": 7,
                    "batch_id": f"forged-{date}", "miner_id": miner, "model_version": "v1", "latency_ms": 1.0,
                    "produced_at": _now()}  # fmt: skip
            for bucket in range(16):
                ids = [f"alert-{bucket}-{i}" for i in range(20)]
                chunks.append((f"{date}:{bucket:04d}".encode(), {**base, "bucket": bucket, "chunk": 0,
                               "alert_ids": ids, "scores": [0.0] * 20, "ranks": list(range(1, 21))}))  # fmt: skip
        total = 0
        for signed in (False, True):
            for key, record in chunks:
                junk = {**record, "scores": [rng.random() for _ in record["alert_ids"]], "produced_at": _now()}
                value = encode("riskstream.AlertScoreBatch", junk)
                headers = sign("score", miner, key, value, date, record["batch_id"]) if signed else None
                self.send(f"scores.{miner}", key, value, headers)
                total += len(record["alert_ids"])
            first = chunks[0][1]
            marker = {"network": first["network"], "processing_date": first["processing_date"], "window_days": 7,
                      "batch_id": first["batch_id"], "miner_id": miner, "alert_count": total, "cluster_count": 0,
                      "alert_chunks": len(chunks), "cluster_chunks": 0, "model_versions": {"alert_scorer": "v1"},
                      "checksum": "0" * 64, "latency_ms": 1.0, "produced_at": _now()}  # fmt: skip
            value = encode("riskstream.SubmissionComplete", marker)
            key = f"{date}:complete".encode()
            self.send(f"scores.{miner}", key, value, sign("score", miner, key, value, date) if signed else None)
        return self.done()

    def garbage(self) -> int:
        """Bytes that are no record, keyed with a date, on a miner's topic; one with a junk signature header."""
        miner, date = self.args.miner, self.args.date
        self.send(f"scores.{miner}", f"{date}:0003".encode(), b"\x00\x00\x00\x00\x01not avro at all")
        self.send(f"scores.{miner}", f"{date}:0004".encode(), b"plain text",
                  [("riskstream-signer", miner.encode()), ("riskstream-signature", b"00" * 64)])  # fmt: skip
        return self.done()

    def forge_ensemble(self) -> int:
        """Version 99 of a date on ensemble.alerts + ensemble.batches, 'signed' as the validator."""
        date, version = self.args.date, 99
        alerts = [m for m in read_topic(self.args.bootstrap, f"{self.ns}ensemble.alerts")]
        batch: dict[str, Any] | None = None
        for m in read_topic(self.args.bootstrap, f"{self.ns}ensemble.batches"):
            name, record = decode(m.value())
            if record["processing_date"].isoformat() == date:
                batch = record
        assert batch is not None, "no ensemble batch to forge from"
        for m in alerts:
            _, record = decode(m.value())
            if record["processing_date"].isoformat() != date:
                continue
            forged = {**record, "version": version, "ensemble_score": 1.0 - record["ensemble_score"]}
            value = encode("riskstream.EnsembleAlertScore", forged)
            self.send("ensemble.alerts", m.key(), value, sign("ensemble.alerts", "validator", m.key(), value, date))
        value = encode("riskstream.EnsembleBatch", {**batch, "version": version, "trigger": "replay"})
        key = f"{batch['network']}:{date}".encode()
        self.send("ensemble.batches", key, value, sign("ensemble.batches", "validator", key, value, date))
        return self.done()

    def replay_burst(self) -> int:
        """Ten unsigned replay commands for one date, and one signed with a key no operator holds."""
        date = self.args.date
        key = f"ethereum:{date}".encode()
        for _ in range(10):
            value = json.dumps({"command": "replay", "network": "ethereum", "date": date}).encode()
            self.send("validator.control", key, value)
        value = json.dumps({"command": "replay", "network": "ethereum", "date": date, "nonce": 1}).encode()
        self.send("validator.control", key, value, sign("control", "operator", key, value, date))
        return self.done()

    def phantom(self) -> int:
        """A registration of a miner that will never submit (validly self-signed: anyone can make a key)."""
        miner = self.args.miner
        record = {"miner_id": miner, "profile": "honest-a", "networks": ["ethereum"], "model_versions": {},
                  "registered_at": _now(), "public_key": public_hex()}  # fmt: skip
        value = encode("riskstream.MinerRegistration", record)
        self.send("miners.registry", miner.encode(), value, sign("registration", miner, miner.encode(), value))
        return self.done()

    def withdraw(self) -> int:
        """Withdraw an honest miner's registration: unsigned, and signed with the attacker's key."""
        key = self.args.miner.encode()
        self.send("miners.registry", key, None)
        self.send("miners.registry", key, None, sign("withdrawal", self.args.miner, key, None))
        record = {"miner_id": self.args.miner, "profile": "honest-a", "networks": ["ethereum"],
                  "model_versions": {}, "registered_at": _now(), "public_key": public_hex()}  # fmt: skip
        value = encode("riskstream.MinerRegistration", record)  # and take its name over with another key
        self.send("miners.registry", key, value, sign("registration", self.args.miner, key, value))
        return self.done()


def _date(text: str) -> Any:
    import datetime as dt

    return dt.date.fromisoformat(text)


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--namespace", default="")
    parser.add_argument("attack", choices=["impersonate", "garbage", "forge-ensemble", "replay-burst", "phantom",
                                           "withdraw"])  # fmt: skip
    parser.add_argument("--miner", default="miner-a")
    parser.add_argument("--date", default="")
    parser.add_argument("--after", action="store_true", help="impersonate: copy the honest submission's ids")
    args = parser.parse_args(argv)
    return int(getattr(Attack(args), args.attack.replace("-", "_"))())


if __name__ == "__main__":
    sys.exit(main())
