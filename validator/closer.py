"""The closer's part of a round closed by several workers, and what every worker's part shares.

``RoundContext`` is what a worker shares with its parts: codec, store, the signing producers, the
round states, registrations, steps and partials read so far, the miners a round waits for, and
the signed sending of steps. ``Closer`` is the part
of the holder of inbox partition 0 (see ``validator.steps``): it closes a round, evaluates the
merged partials once and shares the weights, sends the validation results and the batch record
once every partition's share of the ensemble is out, and applies the labels when they are due.
Whatever a successor finds already on the steps topic it does not do again; what it recomputes
(the outcome, from the same partials, priors and weights) is the same.

    closer = Closer(context)
    closer.part(rkey, state, ledger, now_ms)       # close, weights, done
    closer.judge(rkey, state, ledger, now_ms)      # ground truth, once labels are due
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from streams.batch import batch_key
from streams.codec import AvroCodec
from streams.errors import CodecError
from streams.kafka import BatchProducer
from streams.objectstore import ObjectStore, open_stack_store
from streams.records import ENSEMBLE_BATCH, VALIDATION_RESULT, RoundPartial
from streams.schema_registry import registry_from_url
from streams.signing import VALIDATOR, Signer, SigningProducer, load_or_create_key
from validator.batches import BatchContents, load_batch, load_labels, read_manifest
from validator.closing import closing_inputs
from validator.emitter import HISTORY_KEEP
from validator.errors import BatchLoadError
from validator.identity import KeyBook
from validator.monitoring import RoundMeter
from validator.outcome import (
    ENSEMBLE_ID,
    RoundOutcome,
    evaluate_round,
    judge_ground_truth,
    prior_of,
    tie_draw_seed,
)
from validator.partials import decode_partial
from validator.results import (
    batch_record,
    ground_truth_records,
    ground_truth_results,
    immediate_results,
    rejected_batch_record,
    stored_verdicts,
)
from validator.roster import miners_to_wait_for
from validator.settings import ValidatorSettings
from validator.state import RoundState
from validator.steps import (
    CLOSE,
    DONE,
    JUDGED,
    STEPS_PURPOSE,
    WEIGHTS,
    LedgerSubmissions,
    MinerStep,
    RoundLedger,
    Step,
    encode_step,
    signed,
)
from validator.tables import RoundKey, ValidatorTables

log = logging.getLogger(__name__)


class RoundContext:
    """What a worker's parts share (the worker is one)."""

    def __init__(self, settings: ValidatorSettings) -> None:
        stack = settings.stack
        self.settings = settings
        self.topics = stack.topics
        self.servers = stack.bootstrap_servers
        self.codec = AvroCodec(registry_from_url(stack.schema_registry_url))
        self.store: ObjectStore = open_stack_store(stack)
        self.private_store: ObjectStore = open_stack_store(stack, private=True)
        self.signer = Signer(load_or_create_key(settings.key_path), VALIDATOR)
        self.public_key = self.signer.public_key
        self.raw = BatchProducer(self.servers)
        self.meter = RoundMeter(self.codec, self.topics)
        # ensemble, results, batches; counted after signing
        self.producer = self.meter.wrap(SigningProducer(self.raw, self.signer, self.topics))
        # round states, registrations and score history, as every worker reads them
        self.shared = ValidatorTables.in_memory()
        self.ledgers: dict[str, RoundLedger] = {}  # round -> what the steps say of it
        self.partials: dict[str, tuple[dt.date, bytes]] = {}  # digest -> (date, the share as sent)
        self.contents: dict[str, BatchContents] = {}
        self.partitions = stack.topic_partitions

    def send_step(self, step: Step) -> None:
        value = encode_step(self.codec, step)
        headers = signed(self.signer, STEPS_PURPOSE, step.key, value, step.date)
        self.raw.send(self.topics.validator_steps, step.key, value, headers=headers)
        self.raw.flush()

    def awaited(self, now_ms: int) -> list[str]:
        """The miners a round waits for, as one worker's roster says: configured or registered, and
        active (heartbeat, rounds missed in a row, a submission arriving) by what the steps report."""
        seen = LedgerSubmissions(self.shared.batches, self.ledgers)
        return miners_to_wait_for(self.settings.expected_miners, self.shared, self.settings.liveness, now_ms, seen)

    def contents_of(self, state: RoundState) -> BatchContents:
        if state.manifest_key not in self.contents:
            manifest = read_manifest(self.store, state.manifest_key)
            self.contents[state.manifest_key] = load_batch(self.store, manifest, self.private_store)
        return self.contents[state.manifest_key]

    def shares(self, ledger: RoundLedger) -> list[RoundPartial] | None:
        """The partials the round merges, decoded (None until every one named by a ready step is read)."""
        wanted = ledger.digests(self.partitions)
        if wanted is None or any(d not in self.partials for d in wanted):
            return None
        try:
            return [decode_partial(self.codec, self.partials[d][1]) for d in sorted(wanted)]
        except CodecError as exc:  # signed by this validator and named by digest: only a bug gets here
            log.error("a partial of %s cannot be decoded: %s", ledger.close.round_text if ledger.close else "?", exc)
            return None


class Closer:
    """The closer's part; see the module docstring."""

    def __init__(self, ctx: RoundContext) -> None:
        self.ctx = ctx
        self.sent: set[tuple[str, str, int]] = set()  # (round, step, -1) sent by this worker
        self.outcomes: dict[str, tuple[RoundOutcome, BatchContents]] = {}
        # the keys the miners are bound to, as the batch record names them (the allow-list: several
        # workers share no trust-on-first-use bindings)
        self.keys = KeyBook(ctx.shared.identities, ctx.settings.miner_keys)

    def forget(self, text: str) -> None:
        self.outcomes.pop(text, None)

    def part(self, rkey: RoundKey, state: RoundState, ledger: RoundLedger, now_ms: int) -> None:
        text, parts = rkey.text, self.ctx.partitions
        if ledger.close is None and (text, CLOSE, -1) not in self.sent:
            expected = self.ctx.awaited(now_ms)
            trigger = None
            if ledger.complete(expected, parts):
                trigger = "all_complete"
            elif now_ms >= state.deadline_at and ledger.read_until(parts) >= state.deadline_at:
                trigger = "deadline"
            if trigger is not None:
                priors = self._priors(rkey, expected)
                self.ctx.send_step(Step(rkey.network, rkey.date, ledger.version, CLOSE, trigger=trigger,
                                     miners=priors, expected=tuple(expected)))  # fmt: skip
                self.sent.add((text, CLOSE, -1))
        elif ledger.close is not None and ledger.weights is None and (text, WEIGHTS, -1) not in self.sent:
            found = self._outcome(rkey, state, ledger)
            if found is None:
                return
            outcome = found[0]
            weights = tuple(MinerStep(m, weight=float(w)) for m, w in zip(outcome.miners, outcome.weights, strict=True))
            self.ctx.send_step(Step(rkey.network, rkey.date, ledger.version, WEIGHTS, miners=weights))
            self.sent.add((text, WEIGHTS, -1))
        elif ledger.weights is not None and len(ledger.emitted) >= parts and (text, DONE, -1) not in self.sent:
            found = self._outcome(rkey, state, ledger)
            if found is None:
                return
            outcome, contents = found
            assert ledger.close is not None
            for key, record in immediate_results(outcome, rkey.network, rkey.date, ledger.version):
                self.ctx.producer.send(
                    self.ctx.topics.validator_results, key, self.ctx.codec.encode(VALIDATION_RESULT, record)
                )
            self.ctx.producer.flush()
            batch = batch_record(
                outcome, contents, network=rkey.network, date=rkey.date, window_days=state.window_days,
                batch_id=state.batch_id, version=ledger.version, trigger=ledger.close.trigger,
                expected=list(ledger.close.expected), deadline_ms=state.deadline_at, priors="history",
                keys={m: k for m in outcome.miners if (k := self.keys.public_hex(m))},
            )  # fmt: skip
            self._send_batch(rkey, self.ctx.codec.encode(ENSEMBLE_BATCH, batch))
            self.sent.add((text, DONE, -1))

    def _send_batch(self, rkey: RoundKey, value: bytes) -> None:
        self.ctx.producer.send(self.ctx.topics.ensemble_batches, batch_key(rkey.network, rkey.date), value)
        self.ctx.producer.flush()
        self.ctx.send_step(Step(rkey.network, rkey.date, 1, DONE))

    def _outcome(
        self, rkey: RoundKey, state: RoundState, ledger: RoundLedger
    ) -> tuple[RoundOutcome, BatchContents] | None:
        if rkey.text in self.outcomes:
            return self.outcomes[rkey.text]
        shares = self.ctx.shares(ledger)
        if shares is None or ledger.close is None:
            return None
        try:
            contents = self.ctx.contents_of(state)
        except BatchLoadError as exc:  # the batch failed verification: published as rejected, nobody judged
            log.error("round %s rejected: %s", rkey.text, exc)
            record = rejected_batch_record(
                network=rkey.network, date=rkey.date, window_days=state.window_days, batch_id=state.batch_id,
                version=ledger.version, trigger=ledger.close.trigger, expected=list(ledger.close.expected),
                deadline_ms=state.deadline_at, reason=str(exc),
            )  # fmt: skip
            self._send_batch(rkey, self.ctx.codec.encode(ENSEMBLE_BATCH, record))
            self.sent.update({(rkey.text, WEIGHTS, -1), (rkey.text, DONE, -1)})
            return None
        late = self.ctx.settings.allow_late_versions
        draw = tie_draw_seed(self.ctx.signer, rkey.date)
        inputs = closing_inputs(
            rkey, state, contents, shares, ledger.close.expected, ledger.priors(), late_versions=late, draw_seed=draw
        )
        self.outcomes[rkey.text] = (evaluate_round(inputs, self.ctx.settings), contents)
        return self.outcomes[rkey.text]

    # ---- ground truth (the closer, once the labels are due) ----------------------------------
    def _priors(self, rkey: RoundKey, expected: Sequence[str]) -> tuple[MinerStep, ...]:
        """Each miner's prior from its final scores before the date (one with none takes the default)."""
        s = self.ctx.settings
        miners = sorted(set(expected) | {str(m) for m in self.ctx.shared.weights})
        found = [
            (m, prior_of(self.ctx.shared.weights.get(m), rkey.date, s.weight_alpha, s.default_prior)) for m in miners
        ]
        return tuple(MinerStep(m, prior=p) for m, p in found)

    def judge(self, rkey: RoundKey, state: RoundState, ledger: RoundLedger, now_ms: int) -> None:
        today = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date()
        if not state.labels_key or ledger.judged is not None or (rkey.text, JUDGED, -1) in self.sent:
            return
        if today < rkey.date + dt.timedelta(days=self.ctx.settings.labels_tau_days):
            return  # an early publication waits for the validator's own clock
        shares = self.ctx.shares(ledger)
        if shares is None or ledger.close is None:
            return
        self.sent.add((rkey.text, JUDGED, -1))
        try:
            labels = load_labels(self.ctx.store, read_manifest(self.ctx.store, state.labels_key))
            contents = self.ctx.contents_of(state)
        except BatchLoadError as exc:
            log.error("labels of %s cannot be applied: %s", rkey.text, exc)
            return
        weights = ledger.weight_map()
        late = self.ctx.settings.allow_late_versions
        draw = tie_draw_seed(self.ctx.signer, rkey.date)
        inputs = closing_inputs(
            rkey, state, contents, shares, ledger.close.expected, ledger.priors(), weights, late, draw
        )
        outcome = evaluate_round(inputs, self.ctx.settings)
        s = self.ctx.settings
        truth = judge_ground_truth(outcome, contents, labels, k=s.precision_k, top_k=s.top_contributors)
        results = ground_truth_results(outcome, truth, stored_verdicts(outcome, ledger.version))
        for key, record in ground_truth_records(results, rkey.network, rkey.date, ledger.version):
            value = self.ctx.codec.encode(VALIDATION_RESULT, record)
            self.ctx.producer.send(self.ctx.topics.validator_results, key, value)
        self.ctx.producer.flush()
        finals = tuple(
            MinerStep(m, final_score=float(b["final_score"]), ground_truth_score=float(b["ground_truth_score"]))
            for m, b in results
            if m != ENSEMBLE_ID
        )
        step = Step(rkey.network, rkey.date, ledger.version, JUDGED, miners=finals)
        self.ctx.send_step(step)
        self.judged(step)  # the next close here uses it at once; read back, it changes nothing

    def judged(self, step: Step) -> None:
        """A date's final scores join each miner's history (the next dates' priors)."""
        for m in step.miners:
            history = dict(self.ctx.shared.weights.get(m.miner_id) or {})
            history[step.date.isoformat()] = m.ground_truth_score
            self.ctx.shared.weights[m.miner_id] = dict(sorted(history.items())[-HISTORY_KEEP:])
        text = RoundKey(step.date, step.network).text
        state = RoundState.from_value(self.ctx.shared.batches.get(text))
        self.ctx.shared.batches[text] = state.replace(labels_version=step.version).to_value()
