"""The production compose file parses and every component reads settings that exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.settings import GatewaySettings
from miner.settings import MinerSettings
from sot.settings import SotSettings
from streams.settings import StackSettings
from validator.settings import ValidatorSettings
from warehouse.settings import WarehouseSettings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS: dict[str, Any] = {
    "RISKSTREAM_": StackSettings,
    "SOT_": SotSettings,
    "MINER_": MinerSettings,
    "VALIDATOR_": ValidatorSettings,
    "WAREHOUSE_": WarehouseSettings,
    "GATEWAY_": GatewaySettings,
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.kafka.yml").read_text())
    return loaded


def test_compose_has_the_infrastructure_and_one_service_per_component(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "clickhouse", "minio", "minio-setup"} <= set(services)
    assert {"sot", "miner-a", "miner-b", "miner-c", "validator", "warehouse", "gateway"} <= set(services)
    assert "MINIO_NOTIFY_KAFKA_TOPIC_BATCHES" in services["minio"]["environment"]


def test_the_broker_authenticates_authorises_and_creates_no_topic_by_itself(compose: dict[str, Any]) -> None:
    server = dict(
        line.split("=", 1)
        for line in (ROOT / "deploy" / "kafka" / "server.properties").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert server["process.roles"] == "broker,controller"  # KRaft, no ZooKeeper
    assert server["listeners"].split(",") == ["SASL_PLAINTEXT://:9092", "CONTROLLER://:9093"]
    assert server["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert (
        server["allow.everyone.if.no.acl.found"] == "false" and "StandardAuthorizer" in server["authorizer.class.name"]
    )
    assert server["auto.create.topics.enable"] == "false"
    setup = (ROOT / "deploy" / "kafka" / "setup.sh").read_text()
    assert 'topic "scores.$m"' in setup and '--topic "${NS}scores.$m"' in setup  # a miner writes its own topic only
    services = compose["services"]
    assert services["kafka-setup"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    users = {name: s["environment"].get("RISKSTREAM_KAFKA_USERNAME") for name, s in services.items()
             if name in ("sot", "miner-a", "miner-b", "miner-c", "validator", "warehouse")}  # fmt: skip
    assert len(set(users.values())) == len(users) and None not in users.values()  # one principal each
    homes = [s["volumes"][0] for name, s in services.items() if name in users]
    assert len(set(homes)) == len(homes)  # no participant can read another's keys
    miner_policy = (ROOT / "deploy" / "minio" / "miner-policy.json").read_text()
    assert "riskstream-private" not in miner_policy
    assert services["miner-a"]["environment"]["RISKSTREAM_S3_ACCESS_KEY_ID"] == "miner"


def test_every_riskstream_env_name_is_a_setting(compose: dict[str, Any]) -> None:
    checked = 0
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        for key in env:
            prefix = next((p for p in SETTINGS if key.startswith(p)), None)
            if prefix is None:
                continue
            field = key.removeprefix(prefix).lower()
            assert field in SETTINGS[prefix].model_fields, f"{name}: {key} is not a {SETTINGS[prefix].__name__} field"
            checked += 1
    assert checked > 20


def test_component_commands_exist(compose: dict[str, Any]) -> None:
    from streams.cli import build_parser

    parser = build_parser()
    for name in ("sot", "miner-a", "validator", "warehouse", "gateway"):
        command = compose["services"][name]["command"]
        parser.parse_args(command)  # exits on an unknown subcommand or option
