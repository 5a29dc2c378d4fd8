"""Settings shared by every service: where the broker, object store, ClickHouse and registry are.

Connection settings come from ``RISKSTREAM_*`` environment variables, then from the file the
local stack writes (``.riskstream/stack.env``), then from defaults that work on one machine.
Each service subclasses ``ServiceSettings`` with its own env prefix (``MINER_``, ...).

    stack = StackSettings()                  # reads env + .riskstream/stack.env
    MinerSettings(miner_id="m1").stack.bootstrap_servers
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.signing import trusted_validator_key
from streams.topics import TopicNames

STACK_ENV_FILE = Path(".riskstream") / "stack.env"


class StackSettings(BaseSettings):
    """Connection settings for the whole deployment; the local stack writes them to a file."""

    model_config = SettingsConfigDict(
        env_prefix="RISKSTREAM_", env_file=str(STACK_ENV_FILE), frozen=True, extra="ignore"
    )

    home: Path = Field(Path(".riskstream"), description="local state: stack pid, data dirs, models")
    bootstrap_servers: str = "127.0.0.1:9092"
    object_store_url: str = Field("file://.riskstream/store", description="s3://bucket[/prefix] or file://dir")
    private_store_url: str = Field(
        "",
        description="traps and generator parameters, out of the miners' reach; empty: file://<home>/private, "
        "a directory of its own that no miner setting points at",
    )
    clickhouse_url: str = Field("chdb://.riskstream/clickhouse", description="chdb://path or http(s)://host:8123")
    warehouse_reads_url: str = Field(
        "http://127.0.0.1:8124",
        description="with a chdb:// clickhouse_url: where the sink serves reads (the ClickHouse HTTP interface)",
    )
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    schema_registry_url: str = Field("", description="empty: the file registry of schemas/avro")
    topic_namespace: str = ""
    topic_partitions: int = Field(4, ge=1)
    replication_factor: int = Field(1, ge=1)
    score_buckets: int = Field(16, ge=1, description="buckets of score chunk keys; same for every miner")
    session_timeout_ms: int = Field(10_000, description="group joins take about half of it")
    validator_public_key: str = Field(
        "", description="the validator's Ed25519 public key (hex); empty: the one the local validator wrote under home"
    )
    operator_keys: dict[str, str] = Field(
        default_factory=dict,
        description="operator name -> Ed25519 public key (hex) allowed to sign control commands; empty: the local "
        "operator key under home",
    )
    kafka_security_protocol: str = Field("PLAINTEXT", description="PLAINTEXT (local), SASL_PLAINTEXT or SASL_SSL")
    kafka_sasl_mechanism: str = Field("SCRAM-SHA-512", description="SASL mechanism of the broker")
    kafka_username: str = Field("", description="this participant's broker principal (SASL)")
    kafka_password: SecretStr = SecretStr("")
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None

    @property
    def private_url(self) -> str:
        """Where the SOT and the validator keep what miners must not read (never the miners' store)."""
        return self.private_store_url or f"file://{self.home / 'private'}"

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.topic_namespace)

    def validator_key(self) -> str | None:
        """The validator's public key, once known (see ``streams.signing.trusted_validator_key``)."""
        return trusted_validator_key(self.validator_public_key, self.home)


class ServiceSettings(BaseSettings):
    """Base of each service's settings: its own knobs plus the shared ``stack``."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    stack: StackSettings = Field(default_factory=StackSettings)
    health_port: int = Field(0, ge=0, le=65535, description="port of /health (and /metrics); 0: any free port")
    health_max_unreachable_s: float = Field(
        20.0, gt=0, description="/health answers 503 once the broker has been unreachable this long"
    )
