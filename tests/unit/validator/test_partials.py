"""Partials of several inbox partitions merge into exactly what one worker evaluates and emits."""

from __future__ import annotations

import dataclasses
import datetime as dt
import zlib
from typing import Any

import numpy as np
import pytest
from validator_fakes import DATE, PANEL, RecordingProducer

from simulation import SyntheticBatch, adversarial_panel, make_batch, submission_records, write_batch, write_labels
from streams.codec import AvroCodec
from streams.objectstore import FileObjectStore
from streams.records import ALERT_SCORE_BATCH, ENSEMBLE_ALERT_SCORE, VALIDATION_RESULT, PartialChunk, RoundPartial
from validator.batches import load_labels, read_manifest
from validator.bridge import InboxRecord
from validator.closing import closing_inputs, share_of, shared_ensemble, take
from validator.encoding import EnsembleEncoder
from validator.intake import Intake, Outputs
from validator.outcome import evaluate_round, judge_ground_truth
from validator.partials import (
    decode_partial,
    encode_partial,
    merge_partials,
    partials_of,
    split_partial,
)
from validator.results import ground_truth_records, ground_truth_results, stored_verdicts
from validator.rounds import Rounds
from validator.state import RoundState
from validator.tables import RoundKey, ValidatorTables

T0 = dt.datetime(2026, 1, 2, 6, 0, tzinfo=dt.UTC)
RKEY = RoundKey(DATE, "ethereum")


def _ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def _records(codec: AvroCodec, batch: SyntheticBatch, miners: list[str]) -> list[InboxRecord]:
    """The panel's records as the bridge forwards them, plus a changed resubmission and a dead letter."""
    panel = adversarial_panel(batch, seed=7)
    out = []
    for i, miner in enumerate(miners):
        alerts, clusters = panel[miner]
        seen = T0 + dt.timedelta(seconds=10 + i + (100 if miner == "copycat" else 0))
        sent = submission_records(codec, batch, miner, alerts, clusters, seen, chunk_size=40)
        if miner == "honest-2":  # chunk 0 again with one score changed, same model version: nondeterministic
            key, value = sent[0]
            body = codec.decode(value).record
            body["scores"] = [min(1.0, body["scores"][0] + 0.25), *body["scores"][1:]]
            sent.insert(1, (key, codec.encode(ALERT_SCORE_BATCH, body)))
            sent.insert(2, (key, b"\x00garbage"))  # undecodable: a dead letter of honest-2
        for offset, (key, value) in enumerate(sent):
            out.append(InboxRecord(key.encode(), value, f"scores.{miner}", i % 2, offset, seen_ms=_ms(seen)))
    return out


@pytest.fixture
def batch() -> SyntheticBatch:
    return make_batch(400, DATE, seed=3, published_at=T0)


def _open(rounds: Rounds, store: FileObjectStore, batch: SyntheticBatch) -> None:
    event = store.object_created_event(write_batch(store, batch), 1, "etag", T0)
    assert rounds.open_batch(event, "sot.batches:0:0")


def inbox_partition(key: bytes | None, partitions: int) -> int:
    """Bucket b (key date:b) in b mod partitions, the marker (date:complete) by crc32: any routing
    that keeps one key in one partition merges to the same result."""
    tail = (key or b"").decode().rsplit(":", 1)[-1]
    return int(tail) % partitions if tail.isdigit() else zlib.crc32(key or b"") % partitions


def _partitioned(
    rounds: Rounds, records: list[InboxRecord], partitions: int, codec: AvroCodec
) -> tuple[list[Intake], list[RoundPartial]]:
    """Each partition's own intake (sharing only the round states), and its shares through the wire."""
    intakes = []
    for _ in range(partitions):
        tables = ValidatorTables(batches=rounds.tables.batches)
        intakes.append(Intake(tables, rounds.settings, codec, rounds.store, Outputs(RecordingProducer())))
    for partition in range(partitions):
        intakes[partition].ingest([r for r in records if inbox_partition(r.key, partitions) == partition])
    shares = []
    for partition, intake in enumerate(intakes):
        for share in partials_of(intake, RKEY, 1, partition, codec):
            assert share.key == f"{DATE}:{share.miner_id}"
            decoded = decode_partial(codec, encode_partial(codec, share))
            assert decoded == share
            shares.append(decoded)
    return intakes, shares


@pytest.mark.parametrize("partitions", [1, 2, 3, 4])
def test_merged_partials_give_one_workers_verdicts_weights_and_bytes(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch, partitions: int
) -> None:
    rounds, producer = make_rounds()
    _open(rounds, store, batch)
    records = _records(codec, batch, PANEL)
    _, shares = _partitioned(rounds, records, partitions, codec)
    rounds.ingest(records)
    one, contents = rounds.evaluate(RKEY.text, 1)

    state = RoundState.from_value(rounds.tables.batches[RKEY.text])
    inputs = closing_inputs(RKEY, state, contents, shares, rounds.expected_miners())
    merged = evaluate_round(inputs, rounds.settings)
    assert merged.miners == one.miners
    assert np.array_equal(merged.weights, one.weights) and np.array_equal(merged.immediate, one.immediate)
    assert merged.reasons == one.reasons
    assert [v.metrics for v in merged.behaviour] == [v.metrics for v in one.behaviour]
    assert [dataclasses.astuple(v) for v in merged.integrity] == [dataclasses.astuple(v) for v in one.integrity]
    assert merged.completed_at_ms == one.completed_at_ms
    facts = {m: f for m, f in inputs.facts.items() if m == "honest-2"}["honest-2"]
    assert (facts.resubmissions, facts.determinism_violations, facts.dead_letters) == (1, 1, 1)

    # the shared weights, applied by each partition to its share, give the one worker's records
    weights = dict(zip(merged.miners, merged.weights.tolist(), strict=True))
    encoder = EnsembleEncoder.for_record(codec, ENSEMBLE_ALERT_SCORE, "alert_id")
    ids = contents.alert_ids
    sent: list[bytes] = []
    for partition in range(partitions):
        miners, alerts, _ = shared_ensemble(inputs, weights, rounds.settings.top_contributors)
        rows = share_of(ids, partition, partitions, rounds.settings.stack.score_buckets)
        sent += encoder.encode(take(alerts, rows), miners, ids[rows].tolist(), "ethereum", DATE, 1)
    assert rounds.check(_ms(T0)) == [(RKEY.text, 1, "all_complete")]
    emitted = [v for _, _, v, _ in producer.on(rounds.topics.ensemble_alerts)]
    assert len(sent) == len(emitted) == 400
    assert sorted(sent) == sorted(emitted)


def test_a_partition_without_the_marker_still_reports_its_chunks(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, _ = make_rounds()
    _open(rounds, store, batch)
    _, shares = _partitioned(rounds, _records(codec, batch, ["honest-1"]), 4, codec)
    assert sorted(s.partition for s in shares) == [0, 1, 2, 3]
    assert sum(s.marker is not None for s in shares) == 1
    submissions, facts = merge_partials(shares)
    assert sorted(submissions["honest-1"].alert_ids) == batch.alert_ids
    assert facts["honest-1"].marker is not None and facts["honest-1"].marker["first_seen"] == _ms(T0) + 10_000


def test_a_chunk_in_two_partitions_counts_once_as_the_later_position(codec: AvroCodec) -> None:
    def chunk(position: str, score: float) -> PartialChunk:
        return PartialChunk(
            chunk_id="alert|00001|00000",
            kind="alert",
            ids=("a",),
            scores=(score,),
            ranks=(1.0,),
            model_version="v1",
            produced_at=0,
            position=position,
        )

    def share(partition: int, position: str, score: float) -> RoundPartial:
        return RoundPartial(
            network="ethereum",
            processing_date=DATE,
            version=1,
            partition=partition,
            miner_id="m",
            chunks=(chunk(position, score),),
        )

    shares = [
        share(0, "scores.m:0:10", 0.1),
        share(1, "scores.m:0:9", 0.9),
    ]
    submissions, facts = merge_partials(shares)
    assert submissions["m"].alert_scores == [0.1] and facts["m"].resubmissions == 1


def test_ground_truth_from_the_partials_is_one_workers(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, producer = make_rounds()
    _open(rounds, store, batch)
    records = _records(codec, batch, PANEL)
    _, shares = _partitioned(rounds, records, 3, codec)
    rounds.ingest(records)
    assert rounds.check(_ms(T0))
    labels_key = write_labels(store, batch)
    rounds.note_labels(store.object_created_event(labels_key, 1, "e", T0), "sot.labels:0:0")
    rounds.check(_ms(T0 + dt.timedelta(days=rounds.settings.labels_tau_days)))
    one = [v for _, _, v, _ in producer.on(rounds.topics.validator_results) if b"ground_truth" in (v or b"")]
    assert len(one) == len(PANEL) + 1

    state = RoundState.from_value(rounds.tables.batches[RKEY.text])
    contents = rounds.contents_of(rounds.tables.batches[RKEY.text])
    emitted = evaluate_round(
        closing_inputs(RKEY, state, contents, shares, rounds.expected_miners(), {}), rounds.settings
    )
    weights = dict(zip(emitted.miners, emitted.weights.tolist(), strict=True))
    inputs = closing_inputs(RKEY, state, contents, shares, rounds.expected_miners(), {}, weights)
    outcome = evaluate_round(inputs, rounds.settings)
    labels = load_labels(store, read_manifest(store, labels_key))
    s = rounds.settings
    truth = judge_ground_truth(outcome, contents, labels, k=s.precision_k, top_k=s.top_contributors)
    results = ground_truth_results(outcome, truth, stored_verdicts(outcome, 1))
    merged = [codec.encode(VALIDATION_RESULT, r) for _, r in ground_truth_records(results, "ethereum", DATE, 1)]
    assert sorted(merged) == sorted(one)


def test_a_share_split_in_pieces_merges_to_the_same(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, _ = make_rounds()
    _open(rounds, store, batch)
    _, shares = _partitioned(rounds, _records(codec, batch, PANEL), 2, codec)
    pieces = [p for s in shares for p in split_partial(s, 2048)]
    assert len(pieces) > 2 * len(shares)  # every share of 200 alerts is cut
    assert all(len(encode_partial(codec, p)) < 2048 + 3000 for p in pieces)  # one chunk may pass the limit
    assert sum(p.marker is not None for p in pieces) == sum(s.marker is not None for s in shares)
    assert merge_partials(pieces) == merge_partials(shares)
    assert split_partial(shares[0], 10**9) == [shares[0]]


def test_a_marker_forwarded_after_the_deadline_is_late_in_the_merge_too(
    make_rounds: Any, codec: AvroCodec, store: FileObjectStore, batch: SyntheticBatch
) -> None:
    rounds, _ = make_rounds()
    _open(rounds, store, batch)
    late = _ms(T0 + dt.timedelta(days=1))  # a bridge watermark far past the deadline came before it
    records = [
        dataclasses.replace(r, after_ms=late) if r.topic == "scores.honest-3" and b"complete" in (r.key or b"") else r
        for r in _records(codec, batch, PANEL)
    ]
    _, shares = _partitioned(rounds, records, 3, codec)
    assert any(s.marker and s.marker.arrived_after == late for s in shares)
    rounds.ingest(records)
    one, contents = rounds.evaluate(RKEY.text, 1)
    state = RoundState.from_value(rounds.tables.batches[RKEY.text])
    merged = evaluate_round(closing_inputs(RKEY, state, contents, shares, rounds.expected_miners()), rounds.settings)
    row = one.miners.index("honest-3")
    assert one.integrity[row].metrics["late_records"] == merged.integrity[row].metrics["late_records"] == 1.0
    assert np.array_equal(merged.weights, one.weights)
