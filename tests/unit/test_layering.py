"""Dependencies point one way: services import only ``streams``; nothing in production imports ``simulation``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("sot", "miner", "validator", "gateway", "warehouse")
TOP_LEVEL = ("streams", *SERVICES, "ops", "simulation")


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(TOP_LEVEL)


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", ["streams", *SERVICES])
def test_production_packages_import_only_streams(package: str) -> None:
    allowed = {"streams", package}
    bad = {
        str(path.relative_to(ROOT)): sorted(_imported_packages(path) - allowed)
        for path in _modules(package)
        if _imported_packages(path) - allowed
    }
    assert bad == {}


def test_simulation_imports_no_service() -> None:
    for path in _modules("simulation"):
        assert _imported_packages(path) <= {"streams", "simulation"}, path


def test_the_service_packages_exist() -> None:
    assert all((ROOT / p / "__init__.py").exists() for p in ("streams", "sot", "miner", "validator", "gateway"))
