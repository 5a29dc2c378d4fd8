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

ROOT = Path(__file__).resolve().parents[2]
SETTINGS: dict[str, Any] = {
    "RISKSTREAM_": StackSettings,
    "SOT_": SotSettings,
    "MINER_": MinerSettings,
    "VALIDATOR_": ValidatorSettings,
    "GATEWAY_": GatewaySettings,
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.kafka.yml").read_text())


def test_compose_has_the_infrastructure_and_one_service_per_component(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "clickhouse", "minio", "minio-setup"} <= set(services)
    assert {"sot", "miner-a", "miner-b", "miner-c", "validator", "gateway"} <= set(services)
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert "MINIO_NOTIFY_KAFKA_TOPIC_BATCHES" in services["minio"]["environment"]


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
    for name in ("sot", "miner-a", "validator", "gateway"):
        command = compose["services"][name]["command"]
        parser.parse_args(command)  # exits on an unknown subcommand or option
