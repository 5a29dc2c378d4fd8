"""In the local default, a miner process with its own settings cannot reach traps or generator parameters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# what a miner process can see: every object of its store, every file under every path its settings name
MINER_VIEW = r"""
import json, pathlib
from miner.settings import MinerSettings
from streams.objectstore import open_stack_store
settings = MinerSettings(miner_id="m1")
store = open_stack_store(settings.stack)
paths = [pathlib.Path(store.url.removeprefix("file://")), settings.models_path, settings.key_path.parent]
files = sorted(str(p) for root in paths if root.exists() for p in root.rglob("*") if p.is_file())
print(json.dumps({"objects": store.list(), "files": files, "roots": [str(p.resolve()) for p in paths]}))
"""


def _clean_env() -> dict[str, str]:
    services = ("RISKSTREAM_", "SOT_", "MINER_", "VALIDATOR_", "GATEWAY_")
    return {k: v for k, v in os.environ.items() if not k.startswith(services)}


def test_a_miner_process_cannot_reach_traps_or_generator_parameters(tmp_path: Path) -> None:
    env = _clean_env()
    generate = [sys.executable, "-m", "streams.cli", "sot", "generate", "--date", "2026-03-04",
                "--alerts", "200", "--addresses", "1000", "--flows", "5000", "--clusters", "10"]  # fmt: skip
    subprocess.run(generate, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=300)
    private = sorted(str(p) for p in (tmp_path / ".riskstream" / "private").rglob("*") if p.is_file())
    assert any("/traps/" in p for p in private) and any(p.endswith("params.json") for p in private)

    out = subprocess.run(
        [sys.executable, "-c", MINER_VIEW], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120
    )
    view = json.loads(out.stdout)
    assert any(k.endswith("manifest.json") for k in view["objects"])  # it does see the public batch
    assert not [k for k in view["objects"] if "private" in k or "traps" in k or k.endswith("params.json")]
    assert not [f for f in view["files"] if "private" in f or "/traps/" in f or f.endswith("params.json")]
    private_root = str((tmp_path / ".riskstream" / "private").resolve())
    assert not [r for r in view["roots"] if private_root.startswith(r) or r.startswith(private_root)]
