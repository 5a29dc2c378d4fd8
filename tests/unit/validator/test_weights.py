"""``riskstream validator weights``: validator-signed batch records, keys bound on first use, the dry-run call."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streams.codec import AvroCodec
from streams.kafka import Message
from streams.schema_registry import FileSchemaRegistry
from streams.signing import REGISTRATION, VALIDATOR, Signer
from streams.subnet_weights import SubnetWeight
from streams.topics import TopicNames
from validator.weights import bound_keys, newest_weights, set_weights, weights_report

CODEC = AvroCodec(FileSchemaRegistry.default())
TOPICS = TopicNames("t.")
VALIDATOR_SIGNER = Signer(Ed25519PrivateKey.generate(), VALIDATOR)


def _batch(
    date: dt.date, version: int, weights: dict[str, float], signer: Signer = VALIDATOR_SIGNER, **extra: Any
) -> Message:
    record = extra | {
        "network": "ethereum", "processing_date": date, "window_days": 7, "batch_id": f"b-{date}", "version": version,
        "aggregation_method": "weighted_mean", "trigger": "all_complete", "alert_count": 10, "cluster_count": 1,
        "expected_miners": [], "aggregated_at": dt.datetime(2026, 1, 11, tzinfo=dt.UTC),
        "miners": [{"miner_id": m, "weight": w, "immediate_score": 0.4, "completed": True} for m, w in weights.items()],
    }  # fmt: skip
    key = f"ethereum:{date}"
    value = CODEC.encode("riskstream.EnsembleBatch", record)
    headers = tuple(signer.headers("ensemble.batches", key, value, date=date, batch_id=f"b-{date}"))
    return Message(TOPICS.ensemble_batches, 0, version, key.encode(), value, 0, headers)


def _registration(miner: str, signer: Signer, public_key: str) -> Message:
    record = {"miner_id": miner, "profile": "x", "networks": ["ethereum"], "model_versions": {},
              "registered_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "public_key": public_key}  # fmt: skip
    value = CODEC.encode("riskstream.MinerRegistration", record)
    return Message(
        TOPICS.miner_registry, 0, 0, miner.encode(), value, 0, tuple(signer.headers(REGISTRATION, miner, value))
    )


def test_the_newest_signed_version_of_the_date_wins_and_forgeries_are_ignored() -> None:
    day, later = dt.date(2026, 1, 10), dt.date(2026, 1, 11)
    forger = Signer(Ed25519PrivateKey.generate(), VALIDATOR)
    messages = [
        _batch(day, 1, {"a": 0.5, "b": 0.5}),
        _batch(day, 2, {"a": 0.7, "b": 0.3}),
        _batch(day, 99, {"b": 1.0}, signer=forger),
        _batch(later, 1, {"a": 1.0}),
    ]
    public = VALIDATOR_SIGNER.public_key
    found = newest_weights(messages, CODEC, network="ethereum", date=day, verify_with=public, topics=TOPICS)
    assert found is not None and (found.version, found.miners) == (2, [("a", 0.7), ("b", 0.3)])
    newest = newest_weights(messages, CODEC, network="ethereum", date=None, verify_with=public, topics=TOPICS)
    assert newest is not None and newest.processing_date == later
    assert newest_weights(messages, CODEC, network="bitcoin", date=None, verify_with=public, topics=TOPICS) is None


def test_keys_are_the_first_self_signed_registration_and_the_report_follows_the_sdk() -> None:
    a, b, impostor = (Signer(Ed25519PrivateKey.generate(), n) for n in ("a", "b", "a"))
    keys = bound_keys(
        [
            _registration("a", a, a.public_key),
            _registration("a", impostor, impostor.public_key),  # a later key for the same id: not bound
            _registration("b", a, b.public_key),  # claims b's key but signed by another: ignored
        ],
        CODEC,
    )
    assert keys == {"a": a.public_key}
    found = newest_weights(
        [_batch(dt.date(2026, 1, 10), 2, {"a": 0.7, "b": 0.3})], CODEC, network="ethereum", date=None,
        verify_with=None, topics=TOPICS,
    )  # fmt: skip
    assert found is not None
    report = weights_report(found, keys, max_weight_limit=1.0)
    assert [(w["miner_id"], w["key"], w["uid"], w["weight_u16"]) for w in report["weights"]] == [
        ("a", a.public_key, 0, 65535),
        ("b", "", 1, 28086),  # 0.3 / 0.7 * 65535 = 28086.4
    ]


def test_the_keys_the_validator_bound_come_with_its_signed_batch_record() -> None:
    bound = {"a": "ab" * 32}  # b's record predates its binding: no key, the report leaves it empty
    found = newest_weights(
        [_batch(dt.date(2026, 1, 10), 1, {"a": 0.7, "b": 0.3}, miner_keys=bound)], CODEC, network="ethereum",
        date=None, verify_with=VALIDATOR_SIGNER.public_key, topics=TOPICS,
    )  # fmt: skip
    assert found is not None and found.keys == bound
    report = weights_report(found, found.keys, max_weight_limit=1.0)
    assert [(w["miner_id"], w["key"]) for w in report["weights"]] == [("a", "ab" * 32), ("b", "")]


def test_set_weights_dry_run_prints_the_sdk_call() -> None:
    rows = [SubnetWeight("a", "k", 0, 0.7, 0.7, 65535), SubnetWeight("b", "", 3, 0.3, 0.3, 28086)]
    text = set_weights(rows, netuid=7, wallet="w", hotkey="h", network="test", dry_run=True)
    assert text == (
        "dry run, would call: bittensor.Subtensor(network='test').set_weights(wallet=bittensor.Wallet(name='w', "
        "hotkey='h'), netuid=7, uids=[0, 3], weights=[0.7, 0.3], wait_for_inclusion=True)"
    )
