"""The SOT's settings: which network, how big a batch, which seed, when labels are due.

settings = SotSettings()                    # SOT_* environment + the shared stack settings
settings.network, settings.stack.object_store_url
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from streams.batch import DEFAULT_WINDOW_DAYS
from streams.settings import ServiceSettings


class SotSettings(ServiceSettings):
    """Knobs of the data owner's batch generator and publisher (env prefix ``SOT_``)."""

    model_config = SettingsConfigDict(env_prefix="SOT_", frozen=True, extra="ignore")

    network: str = "ethereum"
    seed: int = Field(7, ge=0, description="fixes the address universe and every day's data")
    window_days: int = Field(DEFAULT_WINDOW_DAYS, ge=1, le=90)
    alerts: int = Field(10_000, ge=10)
    addresses: int = Field(50_000, ge=200)
    flows: int = Field(1_000_000, ge=200)
    clusters: int = Field(500, ge=0)
    emit_events: bool = Field(True, description="false when the object store notifies Kafka itself (MinIO)")
    tau_days: int = Field(7, ge=0, description="labels of date D are due on D + tau")
