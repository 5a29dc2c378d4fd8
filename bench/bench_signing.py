"""Benchmark: what signatures cost per 10k-alert submission (Ed25519 over headers).

The miner signs each chunk and the completion marker; the validator's bridge verifies each
against the miner's key and signs its inbox copy; the sink verifies that copy. Baseline, in the
same run: building and Avro-encoding the same records (what the miner pays anyway).

    .venv/bin/python -m bench.bench_signing
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from simulation import make_batch, submission_records
from streams.codec import AvroCodec
from streams.kafka import Message
from streams.schema_registry import FileSchemaRegistry
from streams.signing import INBOX, SCORE, VALIDATOR, Signer, verify_forwarded
from streams.topics import TopicNames
from validator.bridge import Gate
from validator.identity import KeyBook

ALERTS = 10_000
REPEAT = 20
DATE = dt.date(2026, 1, 15)


def _best(fn: Any) -> float:
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def run() -> list[dict[str, Any]]:
    codec = AvroCodec(FileSchemaRegistry.default())
    batch = make_batch(ALERTS, DATE, seed=1)
    rng = np.random.default_rng(2)
    scores, clusters = rng.random(ALERTS), rng.random(len(batch.cluster_ids))
    produced = dt.datetime(2026, 1, 15, 6, tzinfo=dt.UTC)
    records = submission_records(codec, batch, "m1", scores, clusters, produced)
    miner = Signer(Ed25519PrivateKey.generate(), "m1")
    validator = Signer(Ed25519PrivateKey.generate(), VALIDATOR)
    topics = TopicNames()
    signed = [(k, v, miner.headers(SCORE, k, v, date=DATE, batch_id=batch.batch_id)) for k, v in records]
    messages = [
        Message(topics.miner_scores("m1"), 0, i, k.encode(), v, 0, tuple(h)) for i, (k, v, h) in enumerate(signed)
    ]
    inbox = [
        (m.key, m.value, validator.headers(INBOX, m.key, m.value, batch_id=f"{m.topic}:0:{m.offset}")) for m in messages
    ]

    def encode() -> None:
        submission_records(codec, batch, "m1", scores, clusters, produced)

    def sign() -> None:
        for k, v in records:
            miner.headers(SCORE, k, v, date=DATE, batch_id=batch.batch_id)

    def gate() -> None:  # verify under the miner's key, then sign the inbox copy
        check = Gate(KeyBook({}, {"m1": miner.public_key}), topics, validator)
        for m in messages:
            assert check.check(m) is None
            validator.headers(INBOX, m.key, m.value, batch_id=f"{m.topic}:0:{m.offset}")

    def sink() -> None:
        for k, v, h in inbox:
            verify_forwarded(validator.public_key, k, v, h)

    baseline = _best(encode)
    case = f"{ALERTS // 1000}k-alert submission ({len(records)} records)"
    rows = []
    for label, fn in (("miner signs", sign), ("bridge verifies + signs inbox copy", gate), ("sink verifies", sink)):
        took = _best(fn)
        rows.append(
            {
                "component": "signing",
                "case": f"{label}, {case}",
                "value": round(took * 1000, 3),
                "unit": "ms",
                "baseline": round(baseline * 1000, 3),
                "ratio": round(took / baseline, 3),
            }
        )
    return rows


if __name__ == "__main__":
    from bench.table import print_rows

    print_rows(run())
