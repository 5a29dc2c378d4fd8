"""Trained models on disk: ``{model}_{network}_v{semver}_{YYYYMMDD_HHMMSS}.ubj`` plus ``.json`` metadata.

model_store = ModelStore(settings.models_path)
model = model_store.latest("alert_scorer", "ethereum")   # newest by training time
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xgboost as xgb

from miner.errors import ModelNotFoundError, TrainingError

MODEL_TYPES = ("alert_scorer", "alert_ranker", "cluster_scorer")
_STEM = re.compile(
    r"^(?P<model>alert_scorer|alert_ranker|cluster_scorer)_(?P<network>[a-z0-9]+)"
    r"_v(?P<version>\d+\.\d+\.\d+)_(?P<stamp>\d{8}_\d{6})$"
)
_STAMP = "%Y%m%d_%H%M%S"


def model_stem(model_type: str, network: str, version: str, trained_at: dt.datetime) -> str:
    stem = f"{model_type}_{network}_v{version}_{trained_at.astimezone(dt.UTC).strftime(_STAMP)}"
    if not _STEM.match(stem):
        msg = f"cannot name a model {stem!r}: model type, network or semver is malformed"
        raise TrainingError(msg)
    return stem


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A booster with its metadata; ``version`` is the file stem, sent as model_version."""

    version: str
    model_type: str
    network: str
    booster: xgb.Booster
    metadata: dict[str, Any]

    @property
    def feature_names(self) -> list[str]:
        return list(self.metadata["feature_names"])


class ModelStore:
    """A directory of models; ``latest`` picks the newest of a type for a network."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, stem: str, model: bytes, metadata: dict[str, Any]) -> Path:
        """Write the model and its metadata (model last-but-one, metadata last: it marks a model complete)."""
        if not _STEM.match(stem):
            msg = f"not a model name: {stem!r}"
            raise TrainingError(msg)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{stem}.ubj"
        path.write_bytes(model)
        (self.directory / f"{stem}.json").write_text(json.dumps(metadata, indent=2, sort_keys=True))
        return path

    def versions(self, model_type: str | None = None, network: str | None = None) -> list[str]:
        """Stems of complete models (both files present), oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for meta in self.directory.glob("*.json"):
            match = _STEM.match(meta.stem)
            if not match or not meta.with_suffix(".ubj").is_file():
                continue
            if model_type not in (None, match["model"]) or network not in (None, match["network"]):
                continue
            semver = tuple(int(p) for p in match["version"].split("."))
            found.append((match["stamp"], semver, meta.stem))
        return [stem for *_, stem in sorted(found)]

    def load(self, stem: str) -> LoadedModel:
        match = _STEM.match(stem)
        if not match:
            msg = f"not a model name: {stem!r}"
            raise ModelNotFoundError(msg)
        try:
            metadata = json.loads((self.directory / f"{stem}.json").read_text())
            booster = xgb.Booster()
            booster.load_model(bytearray((self.directory / f"{stem}.ubj").read_bytes()))
        except (OSError, ValueError, xgb.core.XGBoostError) as exc:
            msg = f"model {stem} in {self.directory} cannot be loaded: {exc}"
            raise ModelNotFoundError(msg) from exc
        return LoadedModel(stem, match["model"], match["network"], booster, metadata)

    def latest(self, model_type: str, network: str) -> LoadedModel:
        stems = self.versions(model_type, network)
        if not stems:
            msg = f"no trained {model_type} model for {network} in {self.directory}: run `riskstream miner train` first"
            raise ModelNotFoundError(msg)
        return self.load(stems[-1])
