"""Miner profiles: the ``--profile`` names; two honest XGBoost configurations and the adversarial behaviours.

Each profile names a built-in scorer (``miner.plugins``): the honest ones and partial/late use
the XGBoost scorer with these hyperparameters, the others the scorers in ``miner.adversaries``.

profile = get_profile("honest-b")
profile.feature_names          # the subset its models train and score on
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
