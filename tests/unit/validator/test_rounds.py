"""A round end to end over dict tables: batch event, submissions, ensemble, labels, replay."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from validator_fakes import DATE, PANEL, RecordingProducer, make_settings

from simulation import (
    SyntheticBatch,
    adversarial_panel,
    copied_scores,
    make_batch,
    submission_records,
    write_batch,
    write_labels,
)
from streams.batch import Manifest
from streams.codec import AvroCodec
from streams.objectstore import FileObjectStore
from streams.schema_registry import FileSchemaRegistry
from streams.signing import VALIDATOR, Signer
from validator.bridge import InboxRecord
from validator.errors import ReplayError
from validator.ground_truth import auc_pr
from validator.rounds import Rounds
from validator.tables import ValidatorTables, miner_key, round_key

LABELS_DUE_MS = int(dt.datetime(2026, 1, 9, tzinfo=dt.UTC).timestamp() * 1000)  # DATE + tau (7 days)
T0 = dt.datetime(2026, 1, 2, 6, 0, tzinfo=dt.UTC)


def _ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def _records(
    codec: AvroCodec,
    batch: SyntheticBatch,
    miners: list[str],
    seed: int = 7,
    *,
    claims: dict[str, dt.datetime] | None = None,
    first_offset: int = 0,
    seen_from: dt.datetime = T0,
) -> list[InboxRecord]:
    """Each miner's records as the bridge forwards them: seen 10 s + i after ``seen_from`` (the copycat
    100 s later); ``claims`` overrides the ``produced_at`` a miner writes."""
    panel = adversarial_panel(batch, seed=seed)
    out = []
    for i, miner in enumerate(miners):
        alerts, clusters = panel[miner]
        seen = seen_from + dt.timedelta(seconds=10 + i + (100 if miner == "copycat" else 0))
        claimed = (claims or {}).get(miner, seen)
        for offset, (key, value) in enumerate(
            submission_records(codec, batch, miner, alerts, clusters, claimed, chunk_size=40)
        ):
            record = InboxRecord(key.encode(), value, f"scores.{miner}", 0, first_offset + offset, seen_ms=_ms(seen))
            out.append(record)
    return out


def _open(rounds: Rounds, store: FileObjectStore, batch: SyntheticBatch, offset: int = 0) -> str:
    key = write_batch(store, batch)
    event = store.object_created_event(key, 1, "etag", T0)
    assert rounds.open_batch(event, f"sot.batches:0:{offset}") == [round_key(batch.date, batch.network)]
    return key


def _decoded(codec: AvroCodec, producer: RecordingProducer, topic: str) -> list[dict[str, Any]]:
    return [codec.decode(v).record for _, _, v, _ in producer.on(topic)]


@pytest.fixture
def batch() -> SyntheticBatch:
    return make_batch(400, DATE, seed=3, published_at=T0)


def test_round_emits_every_alert_and_disqualifies_adversaries(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds()
    rounds.tables.identities["honest-1"] = {"public_key": "ab" * 32}  # bound on first use (the others: not yet)
    _open(rounds, store, batch)
    rounds.ingest(_records(codec, batch, PANEL))
    assert rounds.check(int(T0.timestamp() * 1000)) == [(round_key(DATE, "ethereum"), 1, "all_complete")]
    topics = rounds.topics
    alerts = _decoded(codec, producer, topics.ensemble_alerts)
    assert sorted(a["alert_id"] for a in alerts) == batch.alert_ids
    assert sorted(a["rank"] for a in alerts) == list(range(1, 401))
    assert all(0.0 <= a["ensemble_score"] <= 1.0 and a["version"] == 1 for a in alerts)
    assert len(_decoded(codec, producer, topics.ensemble_clusters)) == len(batch.cluster_ids)
    (summary,) = _decoded(codec, producer, topics.ensemble_batches)
    weights = {m["miner_id"]: m["weight"] for m in summary["miners"]}
    assert summary["trigger"] == "all_complete" and summary["alert_count"] == 400
    assert summary["miner_keys"] == {"honest-1": "ab" * 32}  # the hotkeys its weights are for
    assert summary["aggregated_at"] == T0 + dt.timedelta(seconds=10 + 1 + 100)  # the copycat completed last
    for adversary in ("random", "constant", "copycat"):
        assert weights[adversary] < 0.01
    assert sum(weights.values()) == pytest.approx(1.0)
    results = {r["miner_id"]: r for r in _decoded(codec, producer, topics.validator_results)}
    assert any("plagiarism" in r for r in results["copycat"]["reasons"])
    assert any("constant" in r for r in results["constant"]["reasons"])
    assert any("random" in r for r in results["random"]["reasons"])
    assert results["honest-1"]["reasons"] == [] and results["honest-1"]["passed_integrity"]
    # the batch record comes after every alert of its version
    kinds = [t for t, _, _, _ in producer.sent]
    assert kinds.index(topics.ensemble_batches) > max(i for i, t in enumerate(kinds) if t == topics.ensemble_alerts)


def test_labels_give_tier_three_and_ensemble_beats_best_honest(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds()
    _open(rounds, store, batch)
    rounds.ingest(_records(codec, batch, PANEL))
    rounds.check(0)
    labels_key = write_labels(store, batch)
    rounds.note_labels(store.object_created_event(labels_key, 1, "e", T0), "sot.labels:0:0")
    due = dt.datetime.combine(DATE + dt.timedelta(days=rounds.settings.labels_tau_days), dt.time(), dt.UTC)
    rounds.check(int(due.timestamp() * 1000) - 1)  # published early (sot labels --force): held until due
    assert not any(r["stage"] == "ground_truth" for r in _decoded(codec, producer, rounds.topics.validator_results))
    rounds.check(int(due.timestamp() * 1000))
    truth = {
        r["miner_id"]: r
        for r in _decoded(codec, producer, rounds.topics.validator_results)
        if r["stage"] == "ground_truth"
    }
    assert set(truth) == {*PANEL, "ensemble"}
    best_honest = max(truth[f"honest-{i}"]["metrics"]["auc_pr"] for i in (1, 2, 3))
    assert truth["ensemble"]["metrics"]["auc_pr"] >= best_honest
    assert truth["copycat"]["metrics"]["contribution_auc_pr"] == 0.0  # weight 0: contributes nothing
    history = rounds.tables.weights["honest-1"]
    assert history[DATE.isoformat()] == pytest.approx(truth["honest-1"]["ground_truth_score"])
    # the ensemble figure matches a direct computation on the emitted scores
    emitted = {a["alert_id"]: a["ensemble_score"] for a in _decoded(codec, producer, rounds.topics.ensemble_alerts)}
    direct = auc_pr(np.array([emitted[a] for a in batch.alert_ids]), batch.alert_labels.astype(float))
    assert truth["ensemble"]["metrics"]["auc_pr"] == pytest.approx(direct)


def test_deadline_emits_without_a_silent_miner(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds(expected_miners=["honest-1", "honest-2", "ghost"], deadline_s=5)
    _open(rounds, store, batch)
    rounds.ingest(_records(codec, batch, ["honest-1", "honest-2"]))
    deadline = int(T0.timestamp() * 1000) + 5000
    assert rounds.check(deadline - 1) == []
    assert rounds.check(deadline) == [(round_key(DATE, "ethereum"), 1, "deadline")]
    (summary,) = _decoded(codec, producer, rounds.topics.ensemble_batches)
    miners = {m["miner_id"]: m for m in summary["miners"]}
    assert not miners["ghost"]["completed"] and miners["ghost"]["weight"] == 0.0
    assert summary["aggregated_at"] == T0 + dt.timedelta(seconds=5)
    assert all(a["miner_count"] == 2 for a in _decoded(codec, producer, rounds.topics.ensemble_alerts))


def test_a_marker_forwarded_after_a_watermark_past_the_deadline_is_late_though_read_before_the_close(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds(expected_miners=["honest-1", "honest-2", "honest-3"], deadline_s=5)
    _open(rounds, store, batch)
    deadline = int(T0.timestamp() * 1000) + 5000
    on_time = _records(codec, batch, ["honest-1", "honest-2"])
    # honest-3's records came after a bridge watermark at the deadline: they reached the broker after it
    late = [
        dataclasses.replace(r, after_ms=deadline + 100)
        for r in _records(codec, batch, ["honest-1", "honest-2", "honest-3"])
        if r.topic == "scores.honest-3"
    ]
    rounds.ingest(on_time + late)
    assert rounds.check(deadline) == [(round_key(DATE, "ethereum"), 1, "all_complete")]
    (summary,) = _decoded(codec, producer, rounds.topics.ensemble_batches)
    miners = {m["miner_id"]: m for m in summary["miners"]}
    assert not miners["honest-3"]["completed"] and miners["honest-3"]["weight"] == 0.0
    assert miners["honest-1"]["weight"] > 0.3 and miners["honest-2"]["weight"] > 0.3
    results = {r["miner_id"]: r for r in _decoded(codec, producer, rounds.topics.validator_results)}
    assert "integrity: no submission-complete marker before the ensemble" in results["honest-3"]["reasons"]
    assert all(a["miner_count"] == 2 for a in _decoded(codec, producer, rounds.topics.ensemble_alerts))


def test_same_inputs_same_bytes_in_any_order_with_redeliveries(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    records = _records(codec, batch, PANEL)
    first, p1 = make_rounds()
    _open(first, store, batch)
    first.ingest(records)
    first.check(0)
    second, p2 = make_rounds()
    _open(second, store, batch)
    shuffled = list(reversed(records))
    second.ingest(shuffled[:100])
    second.ingest(shuffled[50:])  # overlap: redelivered records change nothing
    second.check(0)
    topic = first.topics.ensemble_alerts
    assert sorted(v for _, _, v, _ in p1.on(topic)) == sorted(v for _, _, v, _ in p2.on(topic))
    assert p1.on(first.topics.ensemble_batches)[0][2] == p2.on(first.topics.ensemble_batches)[0][2]


def test_garbage_goes_to_the_dlq_with_its_source(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds()
    _open(rounds, store, batch)
    garbage = [
        InboxRecord(b"2026-01-02:0001", b"\x00\x00\x00\x00\x01garbage", "scores.honest-1", 3, 99),
        InboxRecord(b"k", b"not avro", "scores.random", 1, 5),
        InboxRecord(b"k", None, "not-a-miner-topic", 0, 0),
    ]
    rounds.ingest([*garbage, *_records(codec, batch, PANEL)])
    dlq = producer.on(rounds.topics.dlq("scores"))
    assert [(k, v) for _, k, v, _ in dlq] == [(g.key, g.value) for g in garbage]
    headers = dict(dlq[0][3])
    assert headers["source_topic"] == b"scores.honest-1" and headers["source_offset"] == b"99"
    assert b"undecodable" in headers["error"]
    assert rounds.check(0)  # processing went on: the round still completes
    results = {r["miner_id"]: r for r in _decoded(codec, producer, rounds.topics.validator_results)}
    assert results["honest-1"]["metrics"]["dead_letters"] == 1.0


def test_foreign_and_misaligned_records_are_dead_lettered(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds()
    records = _records(codec, batch, ["honest-1"])
    impostor = InboxRecord(records[0].key, records[0].value, "scores.honest-2", 0, 1)
    rounds.ingest([impostor])
    (_, _, _, headers) = producer.on(rounds.topics.dlq("scores"))[0]
    assert b"on the topic of miner 'honest-2'" in dict(headers)["error"]


def test_resubmission_replaces_and_nondeterminism_is_caught(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds(expected_miners=["honest-1", "honest-2", "honest-3"])
    _open(rounds, store, batch)
    rounds.ingest(_records(codec, batch, ["honest-1", "honest-2", "honest-3"]))
    panel = adversarial_panel(batch, seed=7)
    changed = panel["honest-2"][0].copy()
    changed[:] = np.clip(changed + 0.05, 0, 1)
    resent = submission_records(codec, batch, "honest-2", changed, panel["honest-2"][1], T0)
    rounds.ingest([InboxRecord(resent[0][0].encode(), resent[0][1], "scores.honest-2", 1, 0)])
    rounds.check(0)
    results = {r["miner_id"]: r for r in _decoded(codec, producer, rounds.topics.validator_results)}
    assert not results["honest-2"]["passed_integrity"] and results["honest-2"]["weight"] == 0.0
    assert results["honest-2"]["metrics"]["determinism_violations"] == 1.0
    assert results["honest-1"]["metrics"]["resubmissions"] == 0.0


def test_replay_from_records_gives_next_version_with_same_scores(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds()
    _open(rounds, store, batch)
    records = _records(codec, batch, PANEL)
    rounds.ingest(records)
    rounds.check(0)
    first = {a["alert_id"]: a for a in _decoded(codec, producer, rounds.topics.ensemble_alerts)}
    producer.sent.clear()
    assert rounds.replay("ethereum", DATE, records, "validator.control:0:0") == (
        round_key(DATE, "ethereum"),
        2,
        "replay",
    )
    assert rounds.replay("ethereum", DATE, records, "validator.control:0:0") is None  # same command again
    second = {a["alert_id"]: a for a in _decoded(codec, producer, rounds.topics.ensemble_alerts)}
    assert {k: {**v, "version": 0} for k, v in first.items()} == {k: {**v, "version": 0} for k, v in second.items()}
    assert {a["version"] for a in second.values()} == {2}


def test_replay_rebuilds_a_round_the_tables_lost(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds()
    write_batch(store, batch)
    assert rounds.replay("ethereum", DATE, _records(codec, batch, PANEL)) == (round_key(DATE, "ethereum"), 1, "replay")
    assert len(producer.on(rounds.topics.ensemble_alerts)) == 400


def test_a_replay_refuses_a_manifest_that_names_another_date(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds()
    key = write_batch(store, batch)
    manifest = Manifest.from_json(store.get(key))
    other = dataclasses.replace(manifest, processing_date=DATE + dt.timedelta(days=1))
    store.put(key, other.to_json())  # the owner's file at this date's key speaks of the next day
    with pytest.raises(ReplayError, match="is the manifest of ethereum"):
        rounds.replay("ethereum", DATE, _records(codec, batch, PANEL))
    assert not producer.on(rounds.topics.ensemble_alerts)
    assert round_key(DATE, "ethereum") not in rounds.tables.batches


def test_republished_batch_opens_a_new_round(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds()
    key = _open(rounds, store, batch)
    rounds.ingest(_records(codec, batch, PANEL))
    rounds.check(0)
    event = store.object_created_event(key, 1, "etag", T0)
    assert rounds.open_batch(event, "sot.batches:0:0") == []  # the same event again
    assert rounds.open_batch(event, "sot.batches:0:1") == [round_key(DATE, "ethereum")]
    assert rounds.check(0) == []  # waits for the miners to re-score
    rounds.ingest(_records(codec, batch, PANEL))
    assert rounds.check(0) == [(round_key(DATE, "ethereum"), 2, "all_complete")]
    second = [r for r in _decoded(codec, producer, rounds.topics.validator_results) if r["version"] == 2]
    weights = {r["miner_id"]: r["weight"] for r in second}
    assert all(r["reasons"] == [] for r in second if r["miner_id"].startswith("honest"))  # re-scored, not copied
    assert all(weights[m] > 0.2 for m in ("honest-1", "honest-2", "honest-3"))


def test_late_records_are_penalised_and_new_version_only_when_allowed(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    for allowed in (False, True):
        rounds, producer = make_rounds(expected_miners=["honest-1", "honest-2"], allow_late_versions=allowed)
        _open(rounds, store, batch)
        rounds.ingest(_records(codec, batch, ["honest-1", "honest-2"]))
        rounds.check(0)
        late = [InboxRecord(r.key, r.value, r.topic, 1, r.offset) for r in _records(codec, batch, ["honest-3"])]
        rounds.ingest(late)
        emitted = rounds.check(0)
        assert emitted == ([(round_key(DATE, "ethereum"), 2, "late_records")] if allowed else [])


def test_expire_drops_old_dates_only(make_rounds: Any, codec: AvroCodec, store: FileObjectStore) -> None:
    rounds, _ = make_rounds(retention_days=3)
    old = make_batch(50, DATE, seed=1, published_at=T0)
    _open(rounds, store, old)
    rounds.ingest(_records(codec, old, ["honest-1"]))
    assert rounds.tables.chunks
    new = make_batch(50, DATE + dt.timedelta(days=10), seed=2, published_at=T0)
    _open(rounds, store, new, offset=1)
    assert not rounds.tables.chunks and not [k for k in rounds.tables.stats if k.startswith(DATE.isoformat())]
    assert DATE.isoformat() in rounds.tables.index  # replay can still find the date


def test_unreadable_batch_files_fail_the_round_not_the_worker(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds()
    key = _open(rounds, store, batch)
    store.put(key.replace("manifest.json", "alerts.parquet"), b"not parquet")
    rounds.ingest(_records(codec, batch, PANEL))
    assert rounds.check(0) == [] and rounds.check(0) == []
    assert rounds.tables.batches[round_key(DATE, "ethereum")]["failed"]
    assert producer.on(rounds.topics.ensemble_alerts) == []
    (rejected,) = _decoded(codec, producer, rounds.topics.ensemble_batches)  # once, with the reason
    assert rejected["status"] == "rejected" and rejected["version"] == 1 and rejected["reason"]
    assert rejected["miners"] == [] and rejected["alert_count"] == 0
    assert producer.on(rounds.topics.validator_results) == []  # nobody judged
    write_batch(store, batch)  # the SOT republishes
    rounds.open_batch(store.object_created_event(key, 1, "etag", T0), "sot.batches:0:9")
    assert rounds.check(0) == [(round_key(DATE, "ethereum"), 2, "all_complete")]  # submissions kept


@pytest.mark.parametrize("fault", ["sha256", "missing", "type", "duplicates", "empty"])
def test_a_batch_that_fails_verification_is_rejected_and_penalises_nobody(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, fault: str
) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    batch = make_batch(120, DATE, seed=3, published_at=T0)
    rounds, producer = make_rounds(expected_miners=["honest-1", "honest-2"])
    key = write_batch(store, batch)
    alerts_key = key.replace("manifest.json", "alerts.parquet")
    table = pq.read_table(io.BytesIO(store.get(alerts_key)))
    if fault == "sha256":
        store.put(alerts_key, store.get(alerts_key) + b"\0")
    elif fault == "missing":
        (store.root / alerts_key).unlink()
    else:
        if fault == "type":  # a number column holding text: no reader can use it
            column = next(f.name for f in table.schema if pa.types.is_floating(f.type))
            text = pa.array(["not a number"] * table.num_rows)
            table = table.set_column(table.schema.get_field_index(column), column, text)
        elif fault == "duplicates":
            ids = table.column("alert_id").to_pylist()
            table = table.set_column(table.schema.get_field_index("alert_id"), "alert_id", pa.array(ids[:60] * 2))
        else:
            table = table.slice(0, 0)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        _rewrite(store, key, alerts_key, buffer.getvalue(), table.num_rows)
    assert rounds.open_batch(store.object_created_event(key, 1, "etag", T0), "sot.batches:0:0")
    rounds.ingest(_records(codec, batch, ["honest-1", "honest-2"]))
    assert rounds.check(_ms(T0) + 60_000) == []
    (rejected,) = _decoded(codec, producer, rounds.topics.ensemble_batches)
    assert rejected["status"] == "rejected", rejected
    print(fault, "->", rejected["reason"])
    assert producer.on(rounds.topics.ensemble_alerts) == [] and producer.on(rounds.topics.validator_results) == []


def _rewrite(store: FileObjectStore, manifest_key: str, key: str, data: bytes, rows: int) -> None:
    """Replace one file and make the manifest agree with it (sha256, rows): a consistent but bad batch."""
    import hashlib
    import json

    store.put(key, data)
    manifest = json.loads(store.get(manifest_key))
    name = key.rsplit("/", 1)[1]
    entry = manifest["files"][name]
    entry["sha256"] = hashlib.sha256(data).hexdigest()
    if "rows" in entry:
        entry["rows"] = rows
    if "bytes" in entry:
        entry["bytes"] = len(data)
    store.put(manifest_key, json.dumps(manifest).encode())


def test_chunks_decoded_on_arrival_are_used_only_while_they_are_the_stored_ones(
    codec: AvroCodec, batch: SyntheticBatch
) -> None:
    from validator.submissions import collect_submissions
    from validator.tables import StoredChunk

    first, second = _records(codec, batch, ["honest-1"])[:2]
    stored = [
        ("2026-01-02|ethereum|honest-1|alert|00000|00000", StoredChunk("scores.honest-1", 0, 1, second.value or b""))
    ]
    items = [(k, v.to_value()) for k, v in stored]
    older = codec.decode(first.value)
    assert older.record["alert_ids"] != codec.decode(second.value).record["alert_ids"]
    expected = codec.decode(second.value).record["alert_ids"]
    stale = {stored[0][0]: ("scores.honest-1:0:0", older)}  # decoded from an older record under that key
    assert collect_submissions(items, codec, stale)["honest-1"].alert_ids == expected
    assert collect_submissions(items, codec)["honest-1"].alert_ids == expected
    same_position = {stored[0][0]: ("scores.honest-1:0:1", older)}  # the position decides: the cache is trusted
    assert collect_submissions(items, codec, same_position)["honest-1"].alert_ids == older.record["alert_ids"]


def test_a_miner_that_resubmits_an_emitted_ensemble_in_a_replay_is_a_copier(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    honest = ["honest-1", "honest-2", "honest-3"]
    rounds, producer = make_rounds(expected_miners=honest)
    _open(rounds, store, batch)
    records = _records(codec, batch, honest)
    rounds.ingest(records)
    assert rounds.check(0) == [(round_key(DATE, "ethereum"), 1, "all_complete")]
    # the echo reads version 1 from ensemble.alerts / ensemble.clusters and sends it back as its own
    v1 = {a["alert_id"]: a["ensemble_score"] for a in _decoded(codec, producer, rounds.topics.ensemble_alerts)}
    c1 = {c["cluster_id"]: c["ensemble_score"] for c in _decoded(codec, producer, rounds.topics.ensemble_clusters)}
    echo_alerts = copied_scores(np.array([v1[a] for a in batch.alert_ids]), seed=1)
    echo_clusters = np.array([c1[c] for c in batch.cluster_ids])
    later = T0 + dt.timedelta(hours=2)
    echo = [
        InboxRecord(k.encode(), v, "scores.echo", 0, offset)
        for offset, (k, v) in enumerate(submission_records(codec, batch, "echo", echo_alerts, echo_clusters, later))
    ]
    producer.sent.clear()
    assert rounds.replay("ethereum", DATE, [*records, *echo], "validator.control:0:1") == (
        round_key(DATE, "ethereum"),
        2,
        "replay",
    )
    results = {r["miner_id"]: r for r in _decoded(codec, producer, rounds.topics.validator_results)}
    assert "plagiarism: near-identical to ensemble version 1, already emitted" in results["echo"]["reasons"]
    assert results["echo"]["weight"] == 0.0 and results["echo"]["passed_integrity"]
    assert results["echo"]["behaviour_score"] < results["honest-1"]["behaviour_score"]
    for miner in honest:  # re-sending the scores version 1 was built from is no copy
        assert results[miner]["reasons"] == [] and results[miner]["weight"] > 0.2
    (summary,) = _decoded(codec, producer, rounds.topics.ensemble_batches)
    assert {m["miner_id"]: m["weight"] for m in summary["miners"]}["echo"] == 0.0
    # without an earlier version (a fresh validator) the echo is still a blend of the earlier submissions
    fresh, fresh_producer = make_rounds(expected_miners=[*honest, "echo"])
    _open(fresh, store, batch)
    fresh.ingest([*records, *echo])
    fresh.check(0)
    first = {r["miner_id"]: r for r in _decoded(codec, fresh_producer, fresh.topics.validator_results)}
    assert any("a blend of earlier submissions" in reason for reason in first["echo"]["reasons"])
    assert first["echo"]["weight"] == 0.0
    assert all(first[m]["weight"] > 0.2 and first[m]["reasons"] == [] for m in honest)


def test_emitted_ensembles_are_kept_for_the_next_version_only_and_expire(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, _ = make_rounds(retention_days=3)
    _open(rounds, store, batch)
    records = _records(codec, batch, PANEL)
    rounds.ingest(records)
    rounds.check(0)
    for position in ("validator.control:0:1", "validator.control:0:2"):
        rounds.replay("ethereum", DATE, records, position)
    versions = sorted({k.split("|")[2] for k in rounds.tables.ensembles})
    assert versions == ["000002", "000003"]  # the last one and the one before it
    contents = rounds.contents_of(rounds.tables.batches[round_key(DATE, "ethereum")])
    kept = rounds.previous_ensemble(round_key(DATE, "ethereum"), 4, contents)
    assert kept is not None and kept.version == 3 and len(kept.scores) == 400
    assert set(kept.weights) == set(PANEL)
    assert rounds.previous_ensemble(round_key(DATE, "ethereum"), 2, contents) is None  # version 1 was dropped
    later = make_batch(50, DATE + dt.timedelta(days=10), seed=2, published_at=T0)
    _open(rounds, store, later, offset=1)
    assert not rounds.tables.ensembles


_JUNK_TOPICS = ["scores.honest-1", "scores.random", "scores.unknown-miner", "not-a-miner-topic"]


@st.composite
def _junk(draw: st.DrawFn, real: list[InboxRecord]) -> InboxRecord:
    """Random bytes, truncated real records, or real bodies behind a wrong schema id."""
    kind = draw(st.sampled_from(["random", "truncated", "wrong_id"]))
    key = draw(st.one_of(st.none(), st.binary(max_size=20), st.just(b"2026-01-02:0003")))
    source = real[draw(st.integers(0, len(real) - 1))].value or b""
    if kind == "random":
        value: bytes | None = draw(st.one_of(st.none(), st.binary(max_size=120)))
    elif kind == "truncated":
        value = source[: draw(st.integers(0, len(source) - 1))]
    else:
        value = b"\x00" + draw(st.integers(9, 2**32 - 1)).to_bytes(4, "big") + source[5:]
    # partitions 1-3: real records sit on partition 0, so no junk shares a real record's position
    return InboxRecord(key, value, draw(st.sampled_from(_JUNK_TOPICS)), draw(st.integers(1, 3)), draw(st.integers(0)))


_REAL = _records(AvroCodec(FileSchemaRegistry.default()), make_batch(120, DATE, seed=5, published_at=T0), PANEL)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.lists(_junk(_REAL), min_size=1, max_size=12), seed=st.randoms(use_true_random=False))
def test_any_junk_in_the_inbox_is_dead_lettered_and_the_round_still_completes(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, junk: list[InboxRecord], seed: Any
) -> None:
    batch = make_batch(120, DATE, seed=5, published_at=T0)
    rounds, producer = make_rounds()
    _open(rounds, store, batch)
    mixed = [*junk, *_REAL]
    seed.shuffle(mixed)
    rounds.ingest(mixed)  # never raises on input
    dead = {(k, v) for _, k, v, _ in producer.on(rounds.topics.dlq("scores"))}
    assert {(j.key, j.value) for j in junk} <= dead
    assert rounds.check(0), "the honest submissions still complete the round"


def test_a_replay_reuses_the_priors_of_the_version_it_replays_unless_reweighed(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore
) -> None:
    rounds, producer = make_rounds()
    day1 = make_batch(300, DATE, seed=3, published_at=T0)
    day2 = make_batch(300, DATE + dt.timedelta(days=1), seed=4, published_at=T0)
    records2 = _records(codec, day2, PANEL)
    for offset, (day, records) in enumerate(((day1, _records(codec, day1, PANEL)), (day2, records2))):
        _open(rounds, store, day, offset=offset)
        rounds.ingest(records)
        rounds.check(0)
    v1 = {a["alert_id"]: a for a in _decoded(codec, producer, rounds.topics.ensemble_alerts)}
    # the first day's labels arrive after the second day was emitted: the miners' history changes
    labels_key = write_labels(store, day1)
    rounds.note_labels(store.object_created_event(labels_key, 1, "e", T0), "sot.labels:0:0")
    due = dt.datetime.combine(DATE + dt.timedelta(days=rounds.settings.labels_tau_days), dt.time(), dt.UTC)
    rounds.check(int(due.timestamp() * 1000))  # labels count once due by the validator's clock
    assert DATE.isoformat() in rounds.tables.weights["honest-1"]
    producer.sent.clear()
    assert rounds.replay("ethereum", day2.date, records2, "validator.control:0:0") is not None
    (batch,) = _decoded(codec, producer, rounds.topics.ensemble_batches)
    assert batch["priors"] == "reused" and batch["status"] == "accepted"
    again = _decoded(codec, producer, rounds.topics.ensemble_alerts)
    assert again and all({**a, "version": 1} == v1[a["alert_id"]] for a in again)  # identical but the version
    producer.sent.clear()
    assert rounds.replay("ethereum", day2.date, records2, "validator.control:0:1", reweigh=True) is not None
    (batch,) = _decoded(codec, producer, rounds.topics.ensemble_batches)
    assert batch["priors"] == "reweighed" and batch["version"] == 3
    reweighed = _decoded(codec, producer, rounds.topics.ensemble_alerts)
    assert any(a["ensemble_score"] != v1[a["alert_id"]]["ensemble_score"] for a in reweighed)


def test_invalid_submissions_earn_no_ground_truth_credit(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds()
    _open(rounds, store, batch)
    rounds.ingest(_records(codec, batch, PANEL))
    rounds.check(0)
    labels_key = write_labels(store, batch)
    rounds.note_labels(store.object_created_event(labels_key, 1, "e", T0), "sot.labels:0:0")
    rounds.check(LABELS_DUE_MS)
    truth = {
        r["miner_id"]: r
        for r in _decoded(codec, producer, rounds.topics.validator_results)
        if r["stage"] == "ground_truth"
    }
    for adversary in ("copycat", "constant", "random"):
        assert truth[adversary]["final_score"] == 0.0 and truth[adversary]["ground_truth_score"] == 0.0
        assert any("no credit" in reason for reason in truth[adversary]["reasons"])
        assert rounds.tables.weights[adversary][DATE.isoformat()] == 0.0
    # the copy scores as well as its original on the labels, and still earns nothing
    assert truth["copycat"]["metrics"]["auc_pr"] == pytest.approx(truth["honest-1"]["metrics"]["auc_pr"], abs=0.02)
    assert truth["honest-1"]["final_score"] > 0.3


def test_order_is_when_the_validator_saw_a_submission_not_what_the_miner_wrote(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds()
    _open(rounds, store, batch)
    # the copycat backdates its produced_at by an hour; the bridge saw it 100 s after honest-1
    rounds.ingest(_records(codec, batch, PANEL, claims={"copycat": T0 - dt.timedelta(hours=1)}))
    rounds.check(0)
    results = {r["miner_id"]: r for r in _decoded(codec, producer, rounds.topics.validator_results)}
    assert "plagiarism: near-identical to honest-1, which submitted earlier" in results["copycat"]["reasons"]
    assert results["honest-1"]["reasons"] == [] and results["honest-1"]["weight"] > 0.2
    assert results["copycat"]["weight"] == 0.0


def test_a_copy_whose_marker_races_ahead_of_the_original_is_still_the_copy(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds()
    _open(rounds, store, batch)
    # the bridge read honest-1's topic behind: its chunks at 10 s, its marker at 300 s; the copycat's
    # chunks (copied once honest-1's were on the broker) at 100 s, its marker at 110 s, claiming an hour earlier
    records = _records(codec, batch, PANEL, claims={"copycat": T0 - dt.timedelta(hours=1)})
    late_marker = _ms(T0 + dt.timedelta(seconds=300))
    rounds.ingest(
        [
            dataclasses.replace(r, seen_ms=late_marker)
            if r.topic == "scores.honest-1" and (r.key or b"").endswith(b":complete")
            else r
            for r in records
        ]
    )
    rounds.check(0)
    results = {r["miner_id"]: r for r in _decoded(codec, producer, rounds.topics.validator_results)}
    assert "plagiarism: near-identical to honest-1, which submitted earlier" in results["copycat"]["reasons"]
    assert results["honest-1"]["reasons"] == [] and results["honest-1"]["weight"] > 0.2


def test_scores_sent_early_do_not_lend_their_time_to_a_copy_sent_later(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds()
    _open(rounds, store, batch)
    # the copycat fills every chunk with placeholders at 1 s, before honest-1 (10 s), then sends the copy at 100 s
    early = _ms(T0 + dt.timedelta(seconds=1))
    copy = [
        r for r in _records(codec, batch, ["copycat"], first_offset=500) if not (r.key or b"").endswith(b":complete")
    ]
    placeholders = [
        dataclasses.replace(r, value=_rescored(codec, r.value, 0.5), offset=r.offset - 500, seen_ms=early) for r in copy
    ]
    rounds.ingest([*placeholders, *_records(codec, batch, PANEL, first_offset=1000)])
    rounds.check(0)
    results = {r["miner_id"]: r for r in _decoded(codec, producer, rounds.topics.validator_results)}
    assert "plagiarism: near-identical to honest-1, which submitted earlier" in results["copycat"]["reasons"]
    assert results["honest-1"]["reasons"] == [] and results["honest-1"]["weight"] > 0.2


def _rescored(codec: AvroCodec, value: bytes | None, score: float) -> bytes:
    decoded = codec.decode(value or b"")
    body = {**decoded.record, "scores": [score] * len(decoded.record["scores"])}
    return codec.encode(decoded.name, body)


def test_a_chunk_is_a_sign_of_life_at_the_time_the_bridge_saw_it(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, _ = make_rounds()
    _open(rounds, store, batch)
    records = _records(codec, batch, ["honest-1"], claims={"honest-1": T0 + dt.timedelta(days=1)})
    chunks = [r for r in records if not (r.key or b"").endswith(b":complete")]
    rounds.ingest(chunks[: len(chunks) // 2])  # half a submission, seen 10 s after T0, claiming a day later
    st = rounds.tables.stats[miner_key(DATE, "ethereum", "honest-1")]
    assert st["last_chunk_at"] == _ms(T0 + dt.timedelta(seconds=10)) and "complete" not in st


def test_a_rescored_batch_keeps_the_order_in_which_the_scores_were_first_seen(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds()
    key = _open(rounds, store, batch)
    rounds.ingest(_records(codec, batch, PANEL))
    rounds.check(0)
    rounds.open_batch(store.object_created_event(key, 1, "etag", T0), "sot.batches:0:1")
    # re-announced: the copycat re-sends its cached copy at once, honest-1 re-scores an hour later
    later = T0 + dt.timedelta(hours=1)
    copy = _records(codec, batch, ["copycat"], first_offset=1000, seen_from=T0)
    rest = _records(codec, batch, [m for m in PANEL if m != "copycat"], first_offset=1000, seen_from=later)
    rounds.ingest([*copy, *rest])
    assert rounds.check(0) == [(round_key(DATE, "ethereum"), 2, "all_complete")]
    second = {r["miner_id"]: r for r in _decoded(codec, producer, rounds.topics.validator_results) if r["version"] == 2}
    assert "plagiarism: near-identical to honest-1, which submitted earlier" in second["copycat"]["reasons"]
    assert second["honest-1"]["reasons"] == [] and second["honest-1"]["weight"] > 0.2


def test_a_deadline_closes_only_once_the_inbox_is_read_up_to_it(
    tmp_path: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    from validator_fakes import make_settings

    from validator.tables import ValidatorTables
    from validator.watermark import Watermarks

    producer = RecordingProducer()
    marks = Watermarks(partitions=2)
    settings = make_settings(tmp_path, expected_miners=["honest-1", "honest-2", "ghost"], deadline_s=5)
    rounds = Rounds(ValidatorTables.in_memory(), settings, codec, store, producer, watermarks=marks)
    _open(rounds, store, batch)
    deadline = _ms(T0) + 5000
    rounds.ingest(_records(codec, batch, ["honest-1"]))
    assert rounds.check(deadline + 60_000) == []  # past the deadline, but nothing says the inbox is read
    marks.advance(0, deadline + 1)
    assert rounds.check(deadline + 60_000) == []  # one partition of two
    marks.advance(1, deadline - 1)
    assert rounds.check(deadline + 60_000) == []  # read only up to before the deadline
    # what arrived on time while the validator was behind (or down) is read before it closes
    rounds.ingest(_records(codec, batch, ["honest-2"], first_offset=500))
    marks.advance(1, deadline + 1)
    assert rounds.check(deadline + 60_000) == [(round_key(DATE, "ethereum"), 1, "deadline")]
    (summary,) = _decoded(codec, producer, rounds.topics.ensemble_batches)
    used = {m["miner_id"]: m for m in summary["miners"]}
    assert used["honest-2"]["completed"] and used["honest-2"]["weight"] > 0.2


def test_miners_seen_at_the_same_instant_are_ordered_by_the_validators_draw_not_by_their_claims(
    tmp_path: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    same = _ms(T0 + dt.timedelta(minutes=5))  # one bridge batch (e.g. after a restart): no evidence of who came first

    def copy_in_pair(key_byte: int, copycat_claims: dt.datetime | None) -> str:
        signer = Signer(Ed25519PrivateKey.from_private_bytes(bytes([key_byte]) * 32), VALIDATOR)
        producer = RecordingProducer()
        rounds = Rounds(ValidatorTables.in_memory(), make_settings(tmp_path), codec, store, producer, signer=signer)
        _open(rounds, store, batch)
        claims = {"copycat": copycat_claims} if copycat_claims else None
        rounds.ingest([dataclasses.replace(r, seen_ms=same) for r in _records(codec, batch, PANEL, claims=claims)])
        rounds.check(0)
        results = {r["miner_id"]: r for r in _decoded(codec, producer, rounds.topics.validator_results)}
        if "plagiarism: near-identical to honest-1, which submitted earlier" in results["copycat"]["reasons"]:
            return "copycat"
        assert "plagiarism: near-identical to copycat, which submitted earlier" in results["honest-1"]["reasons"]
        return "honest-1"

    backdated = T0 - dt.timedelta(hours=1)
    drawn = {key: copy_in_pair(key, backdated) for key in range(1, 9)}
    # a backdated claim moves nothing; the same key (a replay, another worker) draws the same order
    assert all(copy_in_pair(key, None) == drawn[key] for key in (1, 2))
    assert set(drawn.values()) == {"copycat", "honest-1"}  # the draw is the key's, not fixed by the ids
