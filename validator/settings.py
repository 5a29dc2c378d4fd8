"""The validator's settings (env prefix ``VALIDATOR_``), built once at the edge.

settings = ValidatorSettings(expected_miners=["m1", "m2"], deadline_s=30)
settings.stack.bootstrap_servers
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from streams.settings import ServiceSettings
from streams.signing import VALIDATOR, key_path
from validator.roster import Liveness


class ValidatorSettings(ServiceSettings):
    """Every knob of the validator; the defaults work on the embedded local stack."""

    model_config = SettingsConfigDict(env_prefix="VALIDATOR_", frozen=True, extra="ignore")

    app_id: str = Field("riskstream-validator", description="Faust app id: consumer groups and changelog names")
    expected_miners: list[str] = Field(default_factory=list, description="miners whose completion ends a round early")
    deadline_s: float = Field(300.0, gt=0, description="seconds after the batch event when the ensemble is emitted")
    allow_late_versions: bool = Field(False, description="a late completion after emission triggers version + 1")
    table_store: str = Field("memory://", description="memory:// or rocksdb:// (needs a data dir)")
    data_dir: str = Field("", description="Faust data dir (rocksdb tables); empty: <stack.home>/validator")
    retention_days: int = Field(14, ge=1, description="dates older than the newest date minus this are dropped")
    take_size: int = Field(500, ge=1, description="inbox records handled per batch")
    take_within_s: float = Field(0.05, gt=0, description="max wait to fill a batch")
    timer_interval_s: float = Field(0.5, gt=0, description="how often deadlines and retention are checked")
    weight_alpha: float = Field(
        0.3, gt=0, le=1, description="moving average factor of past ground-truth (tier 3) scores: the weight prior"
    )
    default_prior: float = Field(
        0.3,
        ge=0,
        le=0.5,
        description="weight prior (tier-3 scale, 0-0.5) of a miner with no labelled date yet; an honest model of the "
        "demo earns about 0.35-0.40",
    )
    weight_temperature: float = Field(
        0.03,
        gt=0,
        description="softmax temperature of the priors: a lead of this much in prior multiplies a miner's weight by "
        "e (the README gives the simulation it was chosen from)",
    )
    min_weight: float = Field(0.01, ge=0, lt=1, description="normalised weights below this are dropped")
    min_completeness: float = Field(0.95, ge=0, le=1, description="share of the batch a miner must score")
    on_time_s: float = Field(300.0, ge=0, description="latency (from the announcement) that still earns every point")
    max_latency_s: float = Field(3600.0, gt=0, description="latency (from publication) that earns no latency points")
    top_contributors: int = Field(3, ge=1)
    precision_k: int = Field(100, ge=1, description="K of precision@K in ground truth")
    plagiarism_corr: float = Field(0.995, gt=0, le=1, description="Pearson correlation that marks a copy")
    plagiarism_mad: float = Field(0.02, gt=0, description="mean absolute difference under which a pair is a copy")
    originality_rank_corr: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Spearman correlation with an earlier submission (trusted order) at or above which a miner is "
        "a copy (the README gives the measurements it was chosen from)",
    )
    originality_explained: float = Field(
        0.9, gt=0, le=1, description="share of a miner's rank variance a blend of earlier submissions may explain"
    )
    free_explained: float = Field(
        0.5,
        ge=0,
        lt=1,
        description="explained share that costs no weight (two honest models share this much); above it the weight "
        "shrinks linearly to 0 at 1",
    )
    random_corr: float = Field(
        0.1, ge=0, lt=1, description="rank correlation with the consensus below which scores look random"
    )
    changelog_max_batch_size: int = Field(
        1,
        ge=1,
        description="Faust producer batch bytes; 1 keeps table recovery exact on brokers whose ListOffsets "
        "latest is the last batch's first offset + 1 (the local broker); 16384 on Apache Kafka",
    )
    partitioned: bool = Field(
        False,
        description="run as one of several workers of this app id sharing the inbox partitions (validator.workers); "
        "off: the single Faust worker",
    )
    partial_max_bytes: int = Field(
        512 * 1024,
        ge=1024,
        description="several workers: a partition's share of a miner is sent in records of about this many bytes "
        "of chunks (under the broker's message.max.bytes)",
    )
    progress_interval_s: float = Field(
        1.0, gt=0, description="several workers: how often a partition reports its progress on an open round"
    )
    web_enabled: bool = Field(False, description="run Faust's web server")
    web_port: int = Field(6066, ge=1, le=65535)
    bridge_max_records: int = Field(5000, ge=1)
    bridge_fetch_wait_ms: int = Field(
        25,
        ge=1,
        le=500,
        description="longest a fetch of the miner topics waits at the broker: without the broker's append time the "
        "fetch's time is a record's arrival time, so this is how finely the validator can tell who sent first "
        "(a Kafka broker answers as soon as records arrive; the local broker answers at ~half the wait: at 500 ms "
        "two records sent 100 ms apart were fetched together or 250 ms apart)",
    )
    close_when_caught_up: bool = Field(
        True,
        description="a deadline closes a round only once the bridge's watermarks say every record that reached "
        "the broker before it has been read (a restarted validator first reads what arrived while it was down)",
    )
    watermark_interval_s: float = Field(0.5, gt=0, description="how often the caught-up bridge marks the inbox")
    trust_log_append_time: bool = Field(
        True,
        description="a miner record's arrival time is the broker's LogAppendTime when its topic records one "
        "(message.timestamp.type=LogAppendTime; the local broker ignores it), else when the bridge saw it",
    )
    miner_keys: dict[str, str] = Field(
        default_factory=dict,
        description="miner id -> Ed25519 public key (hex), the production allow-list; empty: trust on first use",
    )
    unbound_grace_s: float = Field(
        30.0, ge=0, description="how long records of a miner with no key yet wait for its registration"
    )
    miner_missed_rounds: int = Field(2, ge=0, description="rounds in a row without a submission that end a wait")
    heartbeat_timeout_s: float = Field(120.0, gt=0, description="a registered miner silent this long is inactive")
    replays_per_date: int = Field(3, ge=0, description="operator-signed replays served per date per window")
    replay_window_s: float = Field(3600.0, gt=0, description="the window of replays_per_date")
    labels_tau_days: int = Field(7, ge=0, description="labels of a date are applied from date + tau (own clock)")
    key_file: Path | None = Field(
        None, description="the validator's private key; default {stack.home}/keys/validator.key"
    )
    epoch_check_s: float = Field(
        10.0, gt=0, description="how often the broker's log is checked to be the one state was built on"
    )
    log_level: str = "WARNING"

    @property
    def liveness(self) -> Liveness:
        return Liveness(missed_rounds=self.miner_missed_rounds, heartbeat_timeout_s=self.heartbeat_timeout_s)

    @property
    def key_path(self) -> Path:
        return self.key_file if self.key_file is not None else key_path(self.stack.home, VALIDATOR)
