"""The gateway's settings (``GATEWAY_*``): where it listens and what it serves."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from streams.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """Knobs of the REST gateway; ``stack`` says where ClickHouse and the broker are.

    settings = GatewaySettings()                 # GATEWAY_* and RISKSTREAM_* from the environment
    app = create_app(settings)
    """

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(9000, ge=0, le=65535)
    network: str = Field("ethereum", description="network served when a request names none")
    database: str = Field("riskstream", description="ClickHouse database of the warehouse tables")
    tau_days: int = Field(7, ge=0, description="days from a batch to its ground-truth labels")
    default_limit: int = Field(100, ge=1)
    max_limit: int = Field(100_000, ge=1)
    cache_max_bytes: int = Field(
        256 << 20, ge=0, description="bytes of encoded answers kept until the warehouse changes; 0 disables"
    )
    cache_ttl_s: float = Field(2.0, ge=0, description="how long an answer is served from the cache")
    ranking_cache_mb: int = Field(
        256, ge=0, description="memory for committed ensemble versions answered without SQL; 0 disables"
    )
    access_log: bool = False
