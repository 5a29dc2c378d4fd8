"""Score vectors of honest and adversarial miners (random, constant, copycat), for known-answer tests
and for the weight study (``honest_models``: several honest models with shared errors).

panel = adversarial_panel(batch, seed=3)
alert_scores, cluster_scores = panel["copycat"]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from simulation.batches import SyntheticBatch

Floats = npt.NDArray[np.float64]


def honest_scores(labels: npt.NDArray[np.int8], noise: float, *, seed: int) -> Floats:
    """A noisy but informative model: logistic of a label-separated signal plus noise."""
    rng = np.random.default_rng(seed)
    logit = np.where(labels > 0, 1.2, -1.2) + rng.normal(0.0, noise, len(labels))
    scores: Floats = 1.0 / (1.0 + np.exp(-logit))
    return scores


def honest_models(
    labels: npt.NDArray[np.int8], strengths: Sequence[float], scales: Sequence[float], shared: float, *, seed: int
) -> list[Floats]:
    """Honest models of one batch that share part of their errors, as models with different features
    trained on the same data do: logit = scale x (strength x (+1 | -1) + noise), the noise's share
    ``shared`` common to all. ``strength`` sets a model's skill, ``scale`` how confident its scores are."""
    rng = np.random.default_rng(seed)
    sign = np.where(labels > 0, 1.0, -1.0)
    common = rng.normal(0.0, 1.0, len(labels))
    models = []
    for strength, scale in zip(strengths, scales, strict=True):
        noise = np.sqrt(shared) * common + np.sqrt(1.0 - shared) * rng.normal(0.0, 1.0, len(labels))
        models.append(1.0 / (1.0 + np.exp(-(scale * (strength * sign + noise) - 1.0))))
    return models


def random_scores(n: int, *, seed: int) -> Floats:
    return np.random.default_rng(seed).random(n)


def constant_scores(n: int, value: float = 0.5) -> Floats:
    return np.full(n, value)


def copied_scores(original: Floats, *, seed: int, noise: float = 0.002) -> Floats:
    return np.clip(original + np.random.default_rng(seed).normal(0.0, noise, len(original)), 0.0, 1.0)


def adversarial_panel(batch: SyntheticBatch, *, seed: int) -> dict[str, tuple[Floats, Floats]]:
    """Three honest miners (different noise), a random, a constant and a copycat of the first."""
    n, k = len(batch.alert_ids), len(batch.cluster_ids)
    panel: dict[str, tuple[Floats, Floats]] = {}
    for i, noise in enumerate((0.9, 1.1, 1.3)):
        panel[f"honest-{i + 1}"] = (
            honest_scores(batch.alert_labels, noise, seed=seed + i),
            honest_scores(batch.cluster_labels, noise, seed=seed + 10 + i),
        )
    panel["random"] = (random_scores(n, seed=seed + 20), random_scores(k, seed=seed + 21))
    panel["constant"] = (constant_scores(n), constant_scores(k))
    original = panel["honest-1"]
    panel["copycat"] = (copied_scores(original[0], seed=seed + 30), copied_scores(original[1], seed=seed + 31))
    return panel
