"""The wire records, once: one frozen dataclass per ``schemas/avro/*.avsc`` and the record-name constants.

Every other module names a record through these constants (``codec.encode(ENSEMBLE_BATCH, ...)``,
``decoded.name == SUBMISSION_COMPLETE``) and may build or read it as its dataclass; the dict form is
what fastavro takes and gives (dates as ``datetime.date``, timestamps as aware ``datetime``).

    batch = EnsembleBatch.from_avro(codec.decode(value).record)
    value = codec.encode(batch.NAME, batch.to_avro())
    RECORD_TYPES["riskstream.EnsembleBatch"] is EnsembleBatch
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

NAMESPACE = "riskstream"
ALERT_SCORE_BATCH = f"{NAMESPACE}.AlertScoreBatch"
CLUSTER_SCORE_BATCH = f"{NAMESPACE}.ClusterScoreBatch"
SUBMISSION_COMPLETE = f"{NAMESPACE}.SubmissionComplete"
MINER_ERROR = f"{NAMESPACE}.MinerError"
ENSEMBLE_ALERT_SCORE = f"{NAMESPACE}.EnsembleAlertScore"
ENSEMBLE_CLUSTER_SCORE = f"{NAMESPACE}.EnsembleClusterScore"
ENSEMBLE_BATCH = f"{NAMESPACE}.EnsembleBatch"
VALIDATION_RESULT = f"{NAMESPACE}.ValidationResult"
MINER_REGISTRATION = f"{NAMESPACE}.MinerRegistration"
MINER_HEARTBEAT = f"{NAMESPACE}.MinerHeartbeat"
ROUND_PARTIAL = f"{NAMESPACE}.RoundPartial"  # validator-internal (several workers)
ROUND_STEP = f"{NAMESPACE}.RoundStep"  # validator-internal (several workers)
SUBMISSION_RECORDS = (ALERT_SCORE_BATCH, CLUSTER_SCORE_BATCH, SUBMISSION_COMPLETE)  # what a miner's topic carries


def _to_avro(value: Any) -> Any:
    if isinstance(value, AvroRecord):
        return value.to_avro()
    if isinstance(value, tuple):
        return [_to_avro(v) for v in value]
    if isinstance(value, Mapping):
        return dict(value)
    return value


class AvroRecord:
    """The dict conversions every record dataclass shares; ``NESTED`` names the fields holding sub-records."""

    __slots__ = ()
    NAME: ClassVar[str]
    NESTED: ClassVar[Mapping[str, type[AvroRecord]]] = {}

    def to_avro(self) -> dict[str, Any]:
        """The dict fastavro encodes (arrays as lists, sub-records as dicts)."""
        return {f.name: _to_avro(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> Self:
        """From a decoded (or to-be-encoded) dict; fields the schema defaults may be absent."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in record:
                continue  # the dataclass default, which is the schema's
            value = record[f.name]
            nested = cls.NESTED.get(f.name)
            if nested is not None and isinstance(value, Mapping):  # one sub-record (or null, kept as None)
                value = nested.from_avro(value)
            elif nested is not None and value is not None:  # an array of them
                value = tuple(nested.from_avro(v) for v in value)
            elif isinstance(value, list | tuple):
                value = tuple(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            values[f.name] = value
        return cls(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertScoreBatch(AvroRecord):
    """A chunk of one miner's alert scores and ranks for one batch (aligned arrays). Key: date:bucket."""

    NAME: ClassVar[str] = ALERT_SCORE_BATCH
    network: str
    processing_date: dt.date
    window_days: int
    batch_id: str
    miner_id: str
    model_version: str
    bucket: int
    chunk: int
    alert_ids: tuple[str, ...]
    scores: tuple[float, ...]
    ranks: tuple[int, ...]
    latency_ms: float
    produced_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterScoreBatch(AvroRecord):
    """A chunk of one miner's cluster scores for one batch. Key: date:bucket."""

    NAME: ClassVar[str] = CLUSTER_SCORE_BATCH
    network: str
    processing_date: dt.date
    window_days: int
    batch_id: str
    miner_id: str
    model_version: str
    bucket: int
    chunk: int
    cluster_ids: tuple[str, ...]
    scores: tuple[float, ...]
    latency_ms: float
    produced_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmissionComplete(AvroRecord):
    """The end of one miner's submission for one batch. Key: date:complete."""

    NAME: ClassVar[str] = SUBMISSION_COMPLETE
    network: str
    processing_date: dt.date
    window_days: int
    batch_id: str
    miner_id: str
    alert_count: int
    cluster_count: int
    alert_chunks: int
    cluster_chunks: int
    model_versions: Mapping[str, str]
    checksum: str
    latency_ms: float
    produced_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class MinerError(AvroRecord):
    """A miner could not score a batch. Key: network:date."""

    NAME: ClassVar[str] = MINER_ERROR
    miner_id: str
    network: str | None = None
    processing_date: dt.date | None = None
    batch_key: str
    error_type: str
    message: str
    occurred_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Contributor(AvroRecord):
    """One of the miners that weigh most in an ensemble score (a sub-record, no topic of its own)."""

    NAME: ClassVar[str] = f"{NAMESPACE}.Contributor"
    miner_id: str
    weight: float
    score: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EnsembleAlertScore(AvroRecord):
    """The canonical ensemble score of one alert. Key: date:alert_id."""

    NAME: ClassVar[str] = ENSEMBLE_ALERT_SCORE
    NESTED: ClassVar[Mapping[str, type[AvroRecord]]] = {"top_contributors": Contributor}
    network: str
    processing_date: dt.date
    alert_id: str
    ensemble_score: float
    confidence: float
    miner_count: int
    miner_agreement: float
    score_std: float
    rank: int
    top_contributors: tuple[Contributor, ...]
    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EnsembleClusterScore(AvroRecord):
    """The canonical ensemble score of one cluster. Key: date:cluster_id."""

    NAME: ClassVar[str] = ENSEMBLE_CLUSTER_SCORE
    NESTED: ClassVar[Mapping[str, type[AvroRecord]]] = {"top_contributors": Contributor}
    network: str
    processing_date: dt.date
    cluster_id: str
    ensemble_score: float
    confidence: float
    miner_count: int
    miner_agreement: float
    score_std: float
    rank: int
    top_contributors: tuple[Contributor, ...]
    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MinerWeight(AvroRecord):
    """One miner's weight in a date's ensemble (a sub-record of ``EnsembleBatch``)."""

    NAME: ClassVar[str] = f"{NAMESPACE}.MinerWeight"
    miner_id: str
    weight: float
    immediate_score: float
    completed: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class EnsembleBatch(AvroRecord):
    """One date's ensemble is complete: its miners, their weights, counts. Key: network:date."""

    NAME: ClassVar[str] = ENSEMBLE_BATCH
    NESTED: ClassVar[Mapping[str, type[AvroRecord]]] = {"miners": MinerWeight}
    network: str
    processing_date: dt.date
    window_days: int
    batch_id: str
    version: int
    aggregation_method: str
    trigger: str
    alert_count: int
    cluster_count: int
    expected_miners: tuple[str, ...]
    miners: tuple[MinerWeight, ...]
    aggregated_at: dt.datetime
    status: str = "accepted"
    reason: str = ""
    miner_keys: Mapping[str, str] = field(default_factory=dict)
    priors: str = "history"


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationResult(AvroRecord):
    """One miner's (or the ensemble's) validation for one date. Key: date:miner_id."""

    NAME: ClassVar[str] = VALIDATION_RESULT
    network: str
    processing_date: dt.date
    miner_id: str
    stage: str
    integrity_score: float
    behaviour_score: float
    ground_truth_score: float | None = None
    immediate_score: float
    final_score: float | None = None
    weight: float
    passed_integrity: bool
    reasons: tuple[str, ...]
    metrics: Mapping[str, float]
    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MinerRegistration(AvroRecord):
    """A miner announces itself when it starts serving (key: miner_id; a null value withdraws it)."""

    NAME: ClassVar[str] = MINER_REGISTRATION
    miner_id: str
    profile: str
    networks: tuple[str, ...]
    model_versions: Mapping[str, str]
    registered_at: dt.datetime
    public_key: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MinerHeartbeat(AvroRecord):
    """A serving miner says it is alive (key: miner_id)."""

    NAME: ClassVar[str] = MINER_HEARTBEAT
    miner_id: str
    sent_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PartialMarker(AvroRecord):
    """A miner's completion marker as one validator worker held it (a sub-record of ``RoundPartial``)."""

    NAME: ClassVar[str] = f"{NAMESPACE}.PartialMarker"
    position: str
    alert_count: int
    cluster_count: int
    alert_chunks: int
    cluster_chunks: int
    checksum: str
    model_versions: Mapping[str, str]
    produced_at: int
    seen_at: int
    arrived_after: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PartialChunk(AvroRecord):
    """One decoded chunk of a miner's submission (a sub-record of ``RoundPartial``)."""

    NAME: ClassVar[str] = f"{NAMESPACE}.PartialChunk"
    chunk_id: str
    kind: str
    ids: tuple[str, ...]
    scores: tuple[float, ...]
    ranks: tuple[float, ...]
    model_version: str
    produced_at: int
    position: str
    seen_at: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundPartial(AvroRecord):
    """One inbox partition's share of one miner's submission for a round version. Key: date:miner_id."""

    NAME: ClassVar[str] = ROUND_PARTIAL
    NESTED: ClassVar[Mapping[str, type[AvroRecord]]] = {"marker": PartialMarker, "chunks": PartialChunk}
    network: str
    processing_date: dt.date
    version: int
    partition: int
    miner_id: str
    marker: PartialMarker | None = None
    firsts: Mapping[str, int] = field(default_factory=dict)
    resubmissions: int = 0
    nondeterministic: tuple[str, ...] = ()
    late_records: int = 0
    dead_letters: int = 0
    chunks: tuple[PartialChunk, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.processing_date.isoformat()}:{self.miner_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class StepMiner(AvroRecord):
    """One miner's figures in a round step (a sub-record of ``RoundStep``)."""

    NAME: ClassVar[str] = f"{NAMESPACE}.StepMiner"
    miner_id: str
    alert_chunks: int = 0
    cluster_chunks: int = 0
    marker_alert_chunks: int = -1
    marker_cluster_chunks: int = -1
    digest: str = ""
    weight: float = 0.0
    prior: float = 0.0
    final_score: float = 0.0
    ground_truth_score: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundStep(AvroRecord):
    """One step of a round closed by several validator workers. Key: network:date."""

    NAME: ClassVar[str] = ROUND_STEP
    NESTED: ClassVar[Mapping[str, type[AvroRecord]]] = {"miners": StepMiner}
    network: str
    processing_date: dt.date
    version: int
    step: str
    partition: int = -1
    trigger: str = ""
    read_until_ms: int = 0
    offset: int = -1
    miners: tuple[StepMiner, ...] = ()
    expected_miners: tuple[str, ...] = ()


RECORD_TYPES: Mapping[str, type[AvroRecord]] = {
    cls.NAME: cls
    for cls in (
        AlertScoreBatch,
        ClusterScoreBatch,
        SubmissionComplete,
        MinerError,
        EnsembleAlertScore,
        EnsembleClusterScore,
        EnsembleBatch,
        ValidationResult,
        MinerRegistration,
        MinerHeartbeat,
        RoundPartial,
        RoundStep,
    )
}


def from_avro(name: str, record: Mapping[str, Any]) -> AvroRecord:
    """The dataclass of a decoded record, by its full name (``KeyError`` for a name no schema has)."""
    return RECORD_TYPES[name].from_avro(record)
