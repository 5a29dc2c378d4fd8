"""Miner profiles: two honest model configurations and the adversarial behaviours validators must catch.

profile = get_profile("honest-b")
profile.feature_names          # the subset its models train and score on
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from miner.errors import MinerError
from miner.features import FEATURE_GROUPS, FEATURE_NAMES

MODEL = "model"  # scores with its trained models
RANDOM = "random"
CONSTANT = "constant"
COPYCAT = "copycat"


@dataclass(frozen=True, slots=True)
class Profile:
    """How a miner trains and behaves; ``kind`` says where its scores come from."""

    name: str
    kind: str = MODEL
    feature_groups: tuple[str, ...] = tuple(FEATURE_GROUPS)
    max_depth: int = 6
    rounds: int = 120
    learning_rate: float = 0.1
    ranker_weight: float = 0.3  # share of the alert ranker in the final alert score
    partial: bool = False  # sends only part of the alerts
    late: bool = False  # holds its submission for settings.delay_s

    @property
    def uses_models(self) -> bool:
        return self.kind == MODEL

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The profile's features in canonical order (a subset of ``FEATURE_NAMES``)."""
        wanted = {name for group in self.feature_groups for name in FEATURE_GROUPS[group]}
        return tuple(name for name in FEATURE_NAMES if name in wanted)

    def hyperparameters(self, seed: int, threads: int) -> dict[str, Any]:
        return {
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "subsample": 0.9,
            "colsample_bytree": 0.9,
            "min_child_weight": 2.0,
            "tree_method": "hist",
            "seed": seed,
            "nthread": threads,
        }


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("honest-a"),
        Profile(
            "honest-b",
            feature_groups=("alert", "address", "statistical", "public_label"),
            max_depth=3,
            rounds=200,
            learning_rate=0.08,
            ranker_weight=0.0,
        ),
        Profile("random", kind=RANDOM),
        Profile("constant", kind=CONSTANT),
        Profile("copycat", kind=COPYCAT),
        Profile("partial", partial=True),
        Profile("late", late=True),
    )
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        msg = f"unknown miner profile {name!r}; known: {', '.join(PROFILES)}"
        raise MinerError(msg) from None


def rng_for(miner_id: str, date: dt.date, purpose: str) -> np.random.Generator:
    """A generator seeded by (miner id, date, purpose): the same batch gives the same numbers."""
    digest = hashlib.sha256(f"{miner_id}|{date.isoformat()}|{purpose}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def random_scores(miner_id: str, date: dt.date, count: int, purpose: str = "alerts") -> npt.NDArray[np.float64]:
    return rng_for(miner_id, date, purpose).random(count)


def partial_mask(miner_id: str, date: dt.date, count: int, fraction: float) -> npt.NDArray[np.bool_]:
    """Which entities a partial miner keeps: a seeded ``fraction`` of them."""
    keep = int(round(count * fraction))
    mask = np.zeros(count, dtype=bool)
    mask[rng_for(miner_id, date, "partial").permutation(count)[:keep]] = True
    return mask


def with_noise(miner_id: str, date: dt.date, scores: npt.NDArray[np.float64], noise: float) -> npt.NDArray[np.float64]:
    """A copycat's disguise: the copied scores plus seeded uniform noise, clipped to [0, 1]."""
    jitter = rng_for(miner_id, date, "noise").uniform(-noise, noise, scores.size)
    return np.clip(scores + jitter, 0.0, 1.0)
