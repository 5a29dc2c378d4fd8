"""The miner's settings: who it is, how it behaves, where its models live (env prefix ``MINER_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from streams.batch import DEFAULT_WINDOW_DAYS
from streams.settings import ServiceSettings
from streams.signing import key_path
from streams.topics import validate_miner_id


class MinerSettings(ServiceSettings):
    """One miner's knobs; connection settings come from the nested ``stack``.

    settings = MinerSettings(miner_id="miner-a", profile="honest-a")
    settings.models_path   # .riskstream/models/miner-a
    """

    model_config = SettingsConfigDict(env_prefix="MINER_", frozen=True, extra="ignore")

    miner_id: str = "miner-a"
    profile: str = Field(
        "honest-a", description="built-in scorer: honest-a, honest-b, random, constant, copycat, partial, late"
    )
    scorer: str | None = Field(
        None, description="scorer to use instead of the profile: an entry-point name or package.module:factory"
    )
    model_dir: Path | None = Field(None, description="default: {stack.home}/models/{miner_id}")
    network: str = Field("ethereum", description="network trained by default")
    chunk_size: int = Field(1000, ge=1, le=100_000)
    copy_of: str | None = Field(None, description="miner id a copycat re-emits")
    copy_timeout_s: float = Field(60.0, gt=0)
    copy_noise: float = Field(0.01, ge=0, le=0.5)
    delay_s: float = Field(30.0, ge=0, description="how long a late miner holds its submission")
    partial_fraction: float = Field(0.6, gt=0, le=1, description="share of alerts a partial miner sends")
    constant_score: float = Field(0.5, ge=0, le=1)
    seed: int = 7
    threads: int = Field(2, ge=1, description="xgboost threads")
    arrow_memory_pool: Literal["jemalloc", "mimalloc", "system"] = Field(
        "jemalloc", description="Arrow allocator of the miner process (jemalloc returns a day's pages)"
    )
    key_file: Path | None = Field(None, description="the miner's private key; default {stack.home}/keys/miner-{id}.key")
    heartbeat_s: float = Field(30.0, gt=0, description="seconds between signed heartbeats on miners.registry")
    window_days: int = Field(DEFAULT_WINDOW_DAYS, ge=1, description="snapshot window the miner trains on")
    retrain: bool = Field(True, description="retrain on new labelled dates announced on sot.labels")
    retrain_every_days: int = Field(7, ge=1, description="new labelled dates that trigger a retraining")
    train_window_days: int = Field(30, ge=2, description="labelled dates a retraining uses (the newest ones)")
    retrain_max_auc_pr_drop: float = Field(
        0.02, ge=0, description="a candidate worse than the current model by more (validation AUC-PR) is not promoted"
    )
    retrain_nice: int = Field(10, ge=0, le=19, description="niceness of the retraining process")

    @field_validator("miner_id")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        return validate_miner_id(value)

    @property
    def scorer_spec(self) -> str:
        """The scorer this miner runs: ``scorer`` if set, else the profile's built-in."""
        return self.scorer or self.profile

    @property
    def models_path(self) -> Path:
        return self.model_dir if self.model_dir is not None else self.stack.home / "models" / self.miner_id

    @property
    def submitted_path(self) -> Path:
        """The batches this miner submitted (kept across restarts), per namespace: two stacks may share a home."""
        return self.stack.home / "state" / f"{self.stack.topic_namespace}miner-{self.miner_id}" / "submitted"

    @property
    def key_path(self) -> Path:
        return self.key_file if self.key_file is not None else key_path(self.stack.home, "miner", self.miner_id)

    @property
    def group_id(self) -> str:
        """Consumer group of this miner, namespaced like its topics."""
        return f"{self.stack.topic_namespace}miner-{self.miner_id}"
