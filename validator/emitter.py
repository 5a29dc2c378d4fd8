"""Emitter: a round's outcome evaluated, emitted and kept; then its labels applied.

Each step is split in three so the blocking part never runs on the event loop:
``prepare_*`` reads the tables (on the loop), ``run_*`` loads the batch, evaluates, encodes,
sends and flushes (touches no table: a worker thread may run it), ``commit_*`` writes the tables
(on the loop).

    job = emitter.prepare_emit(key, "deadline")
    emitted = await asyncio.to_thread(emitter.run_emit, job)
    emitter.commit_emit(emitted)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from streams.batch import batch_key
from streams.codec import Decoded
from streams.objectstore import ObjectStore
from streams.records import ENSEMBLE_ALERT_SCORE, ENSEMBLE_BATCH, ENSEMBLE_CLUSTER_SCORE, VALIDATION_RESULT
from streams.signing import Signer
from validator.batches import BatchContents, Labels, load_batch, load_labels, read_manifest
from validator.encoding import EnsembleEncoder
from validator.errors import BatchLoadError
from validator.identity import KeyBook
from validator.intake import Intake
from validator.outcome import (
    ENSEMBLE_ID,
    GroundTruth,
    MinerFacts,
    RoundInputs,
    RoundOutcome,
    content_times,
    evaluate_round,
    judge_ground_truth,
    tie_draw_seed,
)
from validator.results import (
    batch_record,
    ground_truth_records,
    ground_truth_results,
    immediate_results,
    rejected_batch_record,
    stored_verdicts,
)
from validator.state import RoundState
from validator.submissions import collect_submissions
from validator.tables import (
    ANY_NETWORK,
    SEP,
    RoundKey,
    StoredEnsemble,
    ensemble_key,
    ids_digest,
    items_with_prefix,
    keys_with_prefix,
    miner_key,
)

log = logging.getLogger(__name__)
HISTORY_KEEP = 60  # ground-truth scores kept per miner
CONTENTS_KEPT = 8  # batches whose ids stay loaded


@dataclass(frozen=True, slots=True)
class RoundSnapshot:
    """What evaluating a round needs from the tables, read on the event loop."""

    key: RoundKey
    state: RoundState
    version: int
    chunks: list[tuple[str, Any]]
    decoded: dict[str, tuple[str, Decoded]]
    facts: dict[str, MinerFacts]
    history: dict[str, dict[str, float]]
    expected: list[str]
    ensembles: dict[int, list[Any]]  # emitted versions' stored parts
    fixed_weights: dict[str, float] | None = None
    priors: dict[str, float] | None = None  # reused from the version before (None: from history)
    keys: dict[str, str] | None = None  # miner id -> the public key (hex) it is bound to


@dataclass(frozen=True, slots=True)
class EmitJob:
    snapshot: RoundSnapshot
    trigger: str
    reweigh: bool = False

    @property
    def priors_source(self) -> str:
        """What the batch record says of the priors: history, reused or reweighed."""
        if self.reweigh:
            return "reweighed"
        return "history" if self.snapshot.priors is None else "reused"


@dataclass(frozen=True, slots=True)
class Emitted:
    """A version that is out: what ``commit_emit`` keeps of it."""

    job: EmitJob
    outcome: RoundOutcome
    contents: BatchContents

    @property
    def summary(self) -> tuple[str, int, str]:
        return self.job.snapshot.key.text, self.job.snapshot.version, self.job.trigger


@dataclass(frozen=True, slots=True)
class LabelJob:
    snapshot: RoundSnapshot
    stored: dict[str, dict[str, Any]]  # the immediate verdicts as emitted


@dataclass(frozen=True, slots=True)
class Judged:
    """Tier 3 of a round that is out (``results`` empty when the labels could not be read)."""

    job: LabelJob
    results: list[tuple[str, dict[str, Any]]]
    truth: GroundTruth | None


def pick_previous(parts: Mapping[int, Sequence[Any]], version: int, contents: BatchContents) -> StoredEnsemble | None:
    """The last version emitted before ``version`` if it covers the same alerts as ``contents``."""
    earlier = [v for v in parts if v < version]
    if not earlier:
        return None
    stored = StoredEnsemble.from_values(list(parts[max(earlier)]))
    if stored is None or stored.digest != ids_digest(contents.alert_ids.tolist()):
        return None
    return stored


def _after_deadline(marker: dict[str, Any], state: RoundState, late_versions: bool) -> bool:
    """The marker was forwarded after a bridge watermark at or past the deadline: it reached the
    broker after the deadline (trusted time), though it was read before the round closed."""
    if late_versions or state.deadline_at <= 0:
        return False  # late versions take late markers on purpose
    return int(marker.get("arrived_after", 0)) >= state.deadline_at


class Emitter:
    """Evaluate, emit and keep a round's ensemble; apply its labels. See the module docstring."""

    def __init__(self, intake: Intake, private_store: ObjectStore | None = None, signer: Signer | None = None) -> None:
        """The intake's tables, settings, codec, store and outputs; its chunks decoded on arrival."""
        tables, settings, codec, store = intake.tables, intake.settings, intake.codec, intake.store
        self.tables, self.settings, self.codec, self.store = tables, settings, codec, store
        self.private_store = private_store or store  # the traps: never where miners can read
        self.outputs = intake.outputs
        self.decoded = intake.decoded
        self.signer = signer  # the validator's key: it draws the order of miners seen at one instant
        self.topics = settings.stack.topics
        self._alert_encoder = EnsembleEncoder.for_record(codec, ENSEMBLE_ALERT_SCORE, "alert_id")
        self._cluster_encoder = EnsembleEncoder.for_record(codec, ENSEMBLE_CLUSTER_SCORE, "cluster_id")
        self._contents: dict[str, BatchContents] = {}
        self.keys = KeyBook(tables.identities, settings.miner_keys)  # read on the event loop, in snapshot()

    # ---- reading the tables (event loop) -----------------------------------------------------
    def snapshot(
        self,
        rkey: RoundKey,
        version: int,
        expected: list[str],
        fixed_weights: dict[str, float] | None = None,
        *,
        reweigh: bool = False,
    ) -> RoundSnapshot:
        state = RoundState.from_value(self.tables.batches[rkey.text])
        priors = None if reweigh or not state.priors else dict(state.priors)
        chunks = list(items_with_prefix(self.tables.chunks, rkey.prefix))
        decoded = {k: self.decoded[k] for k, _ in chunks if k in self.decoded}
        dlq: dict[str, int] = {}
        for key, value in items_with_prefix(self.tables.stats, miner_key(rkey.date, ANY_NETWORK, "")):
            dlq[key.split(SEP)[2]] = len(value.get("dlq", []))
        facts: dict[str, MinerFacts] = {}
        for key, value in items_with_prefix(self.tables.stats, rkey.prefix):
            miner = key.split(SEP)[2]
            marker = value.get("complete")
            after_deadline = bool(marker) and _after_deadline(marker, state, self.settings.allow_late_versions)
            facts[miner] = MinerFacts(
                marker=None if after_deadline else marker,
                content_seen=content_times(value),
                resubmissions=len(value.get("resubmitted", [])),
                determinism_violations=len(value.get("nondeterministic", [])),
                late_records=len(value.get("late", [])) + int(after_deadline),
                dead_letters=dlq.get(miner, 0),
            )
        for miner, count in dlq.items():
            if miner not in facts:
                facts[miner] = MinerFacts(dead_letters=count)
        miners = {k.split(SEP)[2] for k, _ in chunks} | set(facts) | set(expected)
        history = {m: dict(self.tables.weights.get(m) or {}) for m in miners}
        parts: dict[int, list[Any]] = {}
        for key, value in items_with_prefix(self.tables.ensembles, rkey.prefix):
            parts.setdefault(int(key.split(SEP)[2]), []).append(value)
        keys = {m: k for m in miners if (k := self.keys.public_hex(m))}
        return RoundSnapshot(
            rkey, state, version, chunks, decoded, facts, history, expected, parts, fixed_weights, priors, keys
        )

    def prepare_emit(self, rkey: RoundKey, trigger: str, expected: list[str], *, reweigh: bool = False) -> EmitJob:
        """Version + 1; it reuses the priors of the version before unless ``reweigh``."""
        version = RoundState.from_value(self.tables.batches[rkey.text]).version + 1
        return EmitJob(self.snapshot(rkey, version, expected, reweigh=reweigh), trigger, reweigh)

    def prepare_labels(self, rkey: RoundKey, expected: list[str]) -> LabelJob:
        state = RoundState.from_value(self.tables.batches[rkey.text])
        snap = self.snapshot(rkey, state.version, expected, fixed_weights=dict(state.weights))
        miners = sorted(set(snap.history))
        stored = {m: dict(self.tables.results.get(rkey.miner(m)) or {}) for m in miners}
        return LabelJob(snap, stored)

    # ---- evaluating, sending (any thread; no table access) -----------------------------------
    def contents_of(self, state: RoundState) -> BatchContents:
        key = state.manifest_key
        if key not in self._contents:
            if len(self._contents) > CONTENTS_KEPT:
                self._contents.pop(next(iter(self._contents)))
            self._contents[key] = load_batch(self.store, read_manifest(self.store, key), self.private_store)
        return self._contents[key]

    def preload(self, states: Sequence[RoundState]) -> None:
        """Load the batches of newly opened rounds; one that fails verification is reported at its close."""
        for state in states:
            with contextlib.suppress(BatchLoadError):
                self.contents_of(state)

    def forget_contents(self, manifest_key: str) -> None:
        self._contents.pop(manifest_key, None)

    def evaluate(self, snap: RoundSnapshot) -> tuple[RoundOutcome, BatchContents]:
        """The round's outcome as version ``snap.version``, judged against the last version before it."""
        contents = self.contents_of(snap.state)
        submissions = collect_submissions(snap.chunks, self.codec, snap.decoded)
        state = snap.state
        inputs = RoundInputs(
            date=snap.key.date,
            # latency counts from the announcement this round answers: a replayed batch is re-announced
            published_at_ms=state.opened_at or state.published_at,
            contents=contents,
            submissions=submissions,
            facts=snap.facts,
            expected=snap.expected,
            history=snap.history,
            fixed_weights=snap.fixed_weights,
            priors=snap.priors,
            previous=pick_previous(snap.ensembles, snap.version, contents),
            draw_seed=tie_draw_seed(self.signer, snap.key.date),
        )
        return evaluate_round(inputs, self.settings), contents

    def run_emit(self, job: EmitJob) -> Emitted:
        """Send the round's ensemble as ``job.snapshot.version`` and flush; raises ``BatchLoadError``."""
        snap = job.snapshot
        outcome, contents = self.evaluate(snap)
        date, network, version = snap.key.date, snap.key.network, snap.version
        producer = self.outputs.producer
        prefix = f"{date.isoformat()}:"
        for topic, encoder, scores, ids in (
            (self.topics.ensemble_alerts, self._alert_encoder, outcome.alerts, contents.alert_ids.tolist()),
            (self.topics.ensemble_clusters, self._cluster_encoder, outcome.clusters, contents.cluster_ids.tolist()),
        ):
            payloads = encoder.encode(scores, outcome.miners, ids, network, date, version)
            for key, value in zip(map(prefix.__add__, ids), payloads, strict=True):
                producer.send(topic, key, value)
        for key, record in immediate_results(outcome, network, date, version):
            producer.send(self.topics.validator_results, key, self.codec.encode(VALIDATION_RESULT, record))
        producer.flush()  # every alert and cluster of this version is out before the batch record
        batch = batch_record(
            outcome,
            contents,
            network=network,
            date=date,
            window_days=snap.state.window_days,
            batch_id=snap.state.batch_id,
            version=version,
            trigger=job.trigger,
            expected=snap.expected,
            deadline_ms=snap.state.deadline_at,
            priors=job.priors_source,
            keys=snap.keys,
        )
        producer.send(self.topics.ensemble_batches, batch_key(network, date), self.codec.encode(ENSEMBLE_BATCH, batch))
        producer.flush()
        return Emitted(job, outcome, contents)

    def run_reject(self, job: EmitJob, reason: str) -> None:
        """The batch failed verification: an ``ensemble.batches`` record says so; no scores, no verdicts."""
        snap = job.snapshot
        record = rejected_batch_record(
            network=snap.key.network,
            date=snap.key.date,
            window_days=snap.state.window_days,
            batch_id=snap.state.batch_id,
            version=snap.version,
            trigger=job.trigger,
            expected=snap.expected,
            deadline_ms=snap.state.deadline_at,
            reason=reason,
        )
        self.outputs.producer.send(
            self.topics.ensemble_batches,
            batch_key(snap.key.network, snap.key.date),
            self.codec.encode(ENSEMBLE_BATCH, record),
        )
        self.outputs.producer.flush()

    def run_labels(self, job: LabelJob) -> Judged:
        """Tier 3 of the emitted version against its labels, sent and flushed."""
        snap = job.snapshot
        try:
            labels: Labels = load_labels(self.store, read_manifest(self.store, snap.state.labels_key))
        except BatchLoadError as exc:
            log.error("labels of %s cannot be applied: %s", snap.key.text, exc)
            return Judged(job, [], None)
        outcome, contents = self.evaluate(snap)
        truth = judge_ground_truth(
            outcome, contents, labels, k=self.settings.precision_k, top_k=self.settings.top_contributors
        )
        results = ground_truth_results(outcome, truth, job.stored)
        for key, record in ground_truth_records(results, snap.key.network, snap.key.date, snap.version):
            self.outputs.producer.send(self.topics.validator_results, key, self.codec.encode(VALIDATION_RESULT, record))
        self.outputs.producer.flush()
        log.info(
            "ground truth of %s v%d: ensemble auc_pr %.4f",
            snap.key.text,
            snap.version,
            truth.ensemble_metrics["auc_pr"],
        )
        return Judged(job, results, truth)

    # ---- writing the tables (event loop) -----------------------------------------------------
    def commit_emit(self, emitted: Emitted) -> tuple[str, int, str]:
        """Record the version as emitted: its scores (for the next version), verdicts and weights."""
        snap, outcome = emitted.job.snapshot, emitted.outcome
        rkey, version = snap.key, snap.version
        self._keep_ensemble(rkey, outcome, emitted.contents, version)
        for miner, verdict in stored_verdicts(outcome, version).items():
            self.tables.results[rkey.miner(miner)] = verdict
        state = RoundState.from_value(self.tables.batches[rkey.text])
        self.tables.batches[rkey.text] = state.replace(
            emitted=True,
            version=version,
            trigger=emitted.job.trigger,
            late_pending=False,
            weights={m: float(w) for m, w in zip(outcome.miners, outcome.weights, strict=True)},
            priors={m: float(p) for m, p in zip(outcome.miners, outcome.priors, strict=True)},
        ).to_value()
        log.info(
            "ensemble %s v%d (%s): %d alerts", rkey.text, version, emitted.job.trigger, len(emitted.contents.alert_ids)
        )
        return emitted.summary

    def commit_labels(self, judged: Judged) -> None:
        snap = judged.job.snapshot
        for miner, body in judged.results:
            if miner == ENSEMBLE_ID:
                continue
            history = dict(self.tables.weights.get(miner) or {})
            history[snap.key.date.isoformat()] = body["ground_truth_score"]  # what the priors follow
            self.tables.weights[miner] = dict(sorted(history.items())[-HISTORY_KEEP:])
        state = RoundState.from_value(self.tables.batches[snap.key.text])
        self.tables.batches[snap.key.text] = state.replace(labels_version=snap.version).to_value()

    def _keep_ensemble(self, rkey: RoundKey, outcome: RoundOutcome, contents: BatchContents, version: int) -> None:
        """Store this version's alert scores (for the next version's plagiarism check); drop older ones."""
        alerts = outcome.alerts
        stored = StoredEnsemble(
            version,
            ids_digest(contents.alert_ids.tolist()),
            {m: float(w) for m, w in zip(outcome.miners, outcome.weights, strict=True)},
            np.where(alerts.miner_count > 0, alerts.score, np.nan),
        )
        for key in keys_with_prefix(self.tables.ensembles, rkey.prefix):
            if int(key.split(SEP)[2]) < version - 1:
                del self.tables.ensembles[key]
        for part, value in enumerate(stored.to_values()):
            self.tables.ensembles[ensemble_key(rkey.date, rkey.network, version, part)] = value

    def previous_ensemble(self, rkey: RoundKey, version: int, contents: BatchContents) -> StoredEnsemble | None:
        parts: dict[int, list[Any]] = {}
        for key, value in items_with_prefix(self.tables.ensembles, rkey.prefix):
            parts.setdefault(int(key.split(SEP)[2]), []).append(value)
        return pick_previous(parts, version, contents)
