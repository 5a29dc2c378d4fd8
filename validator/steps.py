"""Round steps: how several validator workers close one round together, and what each has seen.

Every step is a ``RoundStep`` on ``validator.steps`` keyed ``network:date``, so all steps of one
round sit in one topic partition and every worker reads them in the same order. Each worker holds
some inbox partitions; one of them (the holder of inbox partition 0) is the round's closer.

1. ``progress`` (each partition): what it holds per miner (chunks, the marker's counts), how far
   it was read (inbox offset, and when it last was at the inbox end).
2. ``close`` (the closer): every expected miner is complete across the partitions, or the deadline
   passed with every partition read up to it. The first close of a version is the close.
3. ``ready`` (each partition): its ``RoundPartial`` per miner is on ``validator.partials``, named by
   digest; the first ready of a partition is the one merged (a successor re-sends only if none is).
4. ``weights`` (the closer): evaluated once from the merged partials; the first one is the one.
5. ``emitted`` (each partition): its share of the ensemble is out under those weights.
6. ``done`` (the closer): the validation results and the batch record are out.
7. ``judged`` (the closer, once the labels are due): tier 3 is out; every worker adds the miners'
   final scores to the history the next dates' priors come from (the close carries the priors used).

Steps and partials are signed by the validator key and verified on read (``signed`` /
``verified``): a stranger on the broker cannot close, weigh or feed a round.

    ledger = RoundLedger()
    ledger.apply(decode_step(codec, value), signed_at_ms)
    ledger.complete(expected, partitions), ledger.read_until(partitions), ledger.digests(partitions)
    LedgerSubmissions(batches, ledgers)      # the roster's view of who submitted (validator.roster)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.batch import batch_key
from streams.codec import AvroCodec
from streams.errors import CodecError
from streams.records import ROUND_STEP
from streams.signing import VALIDATOR, SignatureError, Signer, verify
from validator.tables import RoundKey

PROGRESS, CLOSE, READY, WEIGHTS, EMITTED, DONE = "progress", "close", "ready", "weights", "emitted", "done"
JUDGED = "judged"
STEPS = (PROGRESS, CLOSE, READY, WEIGHTS, EMITTED, DONE, JUDGED)
PARTIALS_PURPOSE = "validator.partials"  # the signature's purpose line of each internal topic
STEPS_PURPOSE = "validator.steps"


@dataclass(frozen=True, slots=True)
class MinerStep:
    miner_id: str
    alert_chunks: int = 0
    cluster_chunks: int = 0
    marker_alert_chunks: int = -1  # -1: no marker held
    marker_cluster_chunks: int = -1
    digest: str = ""
    weight: float = 0.0
    prior: float = 0.0
    final_score: float = 0.0
    ground_truth_score: float = 0.0  # judged: tier 3, what the priors follow


@dataclass(frozen=True, slots=True)
class Step:
    network: str
    date: dt.date
    version: int
    step: str
    partition: int = -1
    trigger: str = ""
    read_until_ms: int = 0
    offset: int = -1
    miners: tuple[MinerStep, ...] = ()
    expected: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return batch_key(self.network, self.date)

    @property
    def round_text(self) -> str:
        return RoundKey(self.date, self.network).text


def encode_step(codec: AvroCodec, step: Step) -> bytes:
    return codec.encode(
        ROUND_STEP,
        {
            "network": step.network,
            "processing_date": step.date,
            "version": step.version,
            "step": step.step,
            "partition": step.partition,
            "trigger": step.trigger,
            "read_until_ms": step.read_until_ms,
            "offset": step.offset,
            "miners": [
                {
                    "miner_id": m.miner_id,
                    "alert_chunks": m.alert_chunks,
                    "cluster_chunks": m.cluster_chunks,
                    "marker_alert_chunks": m.marker_alert_chunks,
                    "marker_cluster_chunks": m.marker_cluster_chunks,
                    "digest": m.digest,
                    "weight": m.weight,
                    "prior": m.prior,
                    "final_score": m.final_score,
                    "ground_truth_score": m.ground_truth_score,
                }
                for m in step.miners
            ],
            "expected_miners": list(step.expected),
        },
    )


def decode_step(codec: AvroCodec, value: bytes) -> Step:
    """A ``RoundStep``; ``CodecError`` if the bytes are another record or an unknown step."""
    decoded = codec.decode(value)
    body = decoded.record
    if decoded.name != ROUND_STEP or body["step"] not in STEPS:
        msg = f"not a round step: {decoded.name} {body.get('step')!r}"
        raise CodecError(msg)
    return Step(
        network=str(body["network"]),
        date=body["processing_date"],
        version=int(body["version"]),
        step=str(body["step"]),
        partition=int(body["partition"]),
        trigger=str(body["trigger"]),
        read_until_ms=int(body["read_until_ms"]),
        offset=int(body["offset"]),
        miners=tuple(
            MinerStep(
                str(m["miner_id"]),
                int(m["alert_chunks"]),
                int(m["cluster_chunks"]),
                int(m["marker_alert_chunks"]),
                int(m["marker_cluster_chunks"]),
                str(m["digest"]),
                float(m["weight"]),
                float(m["prior"]),
                float(m["final_score"]),
                float(m["ground_truth_score"]),
            )
            for m in body["miners"]
        ),
        expected=tuple(str(m) for m in body["expected_miners"]),
    )


def signed(signer: Signer, purpose: str, key: str, value: bytes, date: dt.date) -> list[tuple[str, bytes]]:
    """The validator's signature headers of an internal record."""
    return list(signer.headers(purpose, key, value, date=date))


def verified(public_key: str, purpose: str, key: bytes | None, value: bytes | None, headers: Any) -> str | None:
    """None if the validator signed this internal record for ``purpose``; else why it is refused."""
    try:
        verify(public_key, purpose, VALIDATOR, key, value, headers)
    except SignatureError as exc:
        return str(exc)
    return None


@dataclass
class RoundLedger:
    """What the steps topic says of one round (version 1), applied in topic order."""

    version: int = 1
    progress: dict[int, Step] = field(default_factory=dict)  # the latest per partition
    offsets: dict[int, int] = field(default_factory=dict)  # the furthest any worker read each partition
    close: Step | None = None
    ready: dict[int, Step] = field(default_factory=dict)
    weights: Step | None = None
    emitted: set[int] = field(default_factory=set)
    done: bool = False
    judged: Step | None = None
    marked: set[str] = field(default_factory=set)  # miners whose marker some partition reported
    grown: dict[str, int] = field(default_factory=dict)  # miner -> when a partition last reported more chunks

    def apply(self, step: Step, signed_at_ms: int = 0) -> None:
        """Apply the next step; ``signed_at_ms`` is when its worker signed it (the validator's clock)."""
        if step.version != self.version:
            return
        if step.step == PROGRESS:
            before = self.progress.get(step.partition)
            held = {m.miner_id: m.alert_chunks + m.cluster_chunks for m in before.miners} if before else {}
            for m in step.miners:
                if m.marker_alert_chunks >= 0:
                    self.marked.add(m.miner_id)
                if m.alert_chunks + m.cluster_chunks > held.get(m.miner_id, 0):
                    self.grown[m.miner_id] = max(self.grown.get(m.miner_id, 0), signed_at_ms)
            self.progress[step.partition] = step
            self.offsets[step.partition] = max(step.offset, self.offsets.get(step.partition, -1))
        elif step.step == CLOSE and self.close is None:
            self.close = step
        elif step.step == READY and self.close is not None:
            self.ready.setdefault(step.partition, step)
            self.offsets[step.partition] = max(step.offset, self.offsets.get(step.partition, -1))
        elif step.step == WEIGHTS and self.close is not None and self.weights is None:
            self.weights = step
        elif step.step == EMITTED and self.weights is not None:
            self.emitted.add(step.partition)
        elif step.step == DONE:
            self.done = True
        elif step.step == JUDGED and self.done and self.judged is None:
            self.judged = step

    def complete(self, expected: Sequence[str], partitions: int) -> bool:
        """Every partition reported, and every expected miner's marker and announced chunks are held."""
        if not expected or len(self.progress) < partitions:
            return False
        alerts: dict[str, int] = {}
        clusters: dict[str, int] = {}
        markers: dict[str, tuple[int, int]] = {}
        for step in self.progress.values():
            for m in step.miners:
                alerts[m.miner_id] = alerts.get(m.miner_id, 0) + m.alert_chunks
                clusters[m.miner_id] = clusters.get(m.miner_id, 0) + m.cluster_chunks
                if m.marker_alert_chunks >= 0:
                    markers[m.miner_id] = (m.marker_alert_chunks, m.marker_cluster_chunks)
        for miner in expected:
            if miner not in markers:
                return False
            want_alerts, want_clusters = markers[miner]
            if alerts.get(miner, 0) < want_alerts or clusters.get(miner, 0) < want_clusters:
                return False
        return True

    def read_until(self, partitions: int) -> int:
        """Every partition was read to the inbox end at or after this time (0: not every one reported)."""
        if len(self.progress) < partitions:
            return 0
        return min(step.read_until_ms for step in self.progress.values())

    def digests(self, partitions: int) -> dict[str, int] | None:
        """digest -> partition of every partial the closer merges, once every partition is ready."""
        if self.close is None or len(self.ready) < partitions:
            return None
        return {m.digest: p for p, step in self.ready.items() for m in step.miners}

    def weight_map(self) -> Mapping[str, float]:
        return {m.miner_id: m.weight for m in self.weights.miners} if self.weights is not None else {}

    def priors(self) -> dict[str, float]:
        """The priors the close fixed (miners it does not name take the default prior)."""
        return {m.miner_id: m.prior for m in self.close.miners} if self.close is not None else {}


@dataclass(frozen=True, slots=True)
class LedgerSubmissions:
    """``validator.roster.Submissions`` from the steps, for several workers (no one holds every
    partition's facts): a miner submitted a round if a partition reported its marker; it is
    submitting an open round if a partition reported its marker, or more of its chunks within the
    timeout (the progress step's signed time: when that partition's worker had them)."""

    batches: Mapping[str, Any]  # round key -> round state, as every worker reads them
    ledgers: Mapping[str, RoundLedger]

    def submitted(self, rkey: str, miner: str) -> bool:
        ledger = self.ledgers.get(rkey)
        return ledger is not None and miner in ledger.marked

    def submitting(self, miner: str, now_ms: int, timeout_ms: float) -> bool:
        for rkey, ledger in self.ledgers.items():
            state = self.batches.get(rkey)
            if not state or not state.get("opened") or state.get("emitted"):
                continue
            grown = ledger.grown.get(miner)
            if miner in ledger.marked or (grown is not None and now_ms - grown <= timeout_ms):
                return True
        return False
