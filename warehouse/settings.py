"""The warehouse sink's settings (``WAREHOUSE_*``): what it consumes, how it batches, where it answers."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from streams.settings import ServiceSettings


class WarehouseSettings(ServiceSettings):
    """Knobs of the sink; ``stack`` says where the broker and ClickHouse are.

    settings = WarehouseSettings()               # WAREHOUSE_* and RISKSTREAM_* from the environment
    await run_warehouse(settings, stop)
    """

    model_config = SettingsConfigDict(env_prefix="WAREHOUSE_", frozen=True, extra="ignore")

    database: str = Field("riskstream", description="ClickHouse database of the warehouse tables")
    group_id: str = Field("riskstream-warehouse", description="consumer group of the sink")
    max_records: int = Field(5_000, ge=1, description="records per poll, inserted with one statement per table")
    marker_timeout_s: float = Field(30.0, gt=0, description="hold a batch marker at most this long for its rows")
    retry_max_s: float = Field(30.0, gt=0, description="longest wait between retries of a failed insert")
    http_host: str = Field("127.0.0.1", description="with a ClickHouse server: where /metrics and /health listen")
    http_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="with a ClickHouse server: port of /metrics and /health (unset: none); with chDB the "
        "endpoint is the read address RISKSTREAM_WAREHOUSE_READS_URL",
    )
    tau_days: int = Field(7, ge=0, description="days from a batch to its ground-truth labels (kept until due)")
    retention_days: int = Field(
        90, ge=0, description="score rows of dates older than the newest minus this are removed; 0 keeps all"
    )
    retention_interval_s: float = Field(3600.0, gt=0, description="how often the sink applies the retention")
    health_max_unreachable_s: float = Field(
        20.0, gt=0, description="/health answers 503 after the broker is gone this long"
    )
    read_connections: int = Field(4, ge=1, le=64, description="chDB connections that answer reads in parallel")
