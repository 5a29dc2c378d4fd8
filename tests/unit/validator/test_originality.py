"""Originality by trusted order: transformed, noisy and blended copies are caught, honest models are not."""

from __future__ import annotations

import numpy as np

from validator.originality import (
    Originality,
    OriginalityThresholds,
    centred_ranks,
    explained_share,
    judge_originality,
)

N = 2000


def _honest_pair(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Two informative models with different features: rank correlation ~0.6."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(0, 1, N)
    a = 1 / (1 + np.exp(-(signal + rng.normal(0, 0.8, N))))
    b = 1 / (1 + np.exp(-(signal + rng.normal(0, 0.8, N))))
    return a, b


def _judge(rows: dict[str, np.ndarray], order: list[str]) -> dict[str, Originality]:
    ids = sorted(rows)
    matrix = np.vstack([rows[m] for m in ids])
    at = [float(order.index(m)) for m in ids]
    found = judge_originality(matrix, ids, at, np.ones(len(ids), dtype=bool), OriginalityThresholds())
    return dict(zip(ids, found, strict=True))


def test_two_honest_models_are_original_and_contribute_fully() -> None:
    a, b = _honest_pair()
    found = _judge({"honest-a": a, "honest-b": b}, ["honest-a", "honest-b"])
    first, second = found["honest-a"], found["honest-b"]
    assert first.copy_of is None and first.contribution == 1.0 and first.max_rank_corr == 0.0  # compared with no one
    assert second.copy_of is None and 0.4 < second.max_rank_corr < 0.8
    assert second.contribution == 1.0  # what two honest models share costs nothing


def test_a_noisy_copy_a_monotone_transform_and_a_blend_are_copies_of_the_earlier_submitters() -> None:
    a, b = _honest_pair()
    rng = np.random.default_rng(9)
    rows = {
        "honest-a": a,
        "honest-b": b,
        "noisy": np.clip(a + rng.normal(0, 0.02, N), 0, 1),
        "sqrt": np.sqrt(b),
        "blend": 0.5 * a + 0.5 * b,
    }
    found = _judge(rows, ["honest-a", "honest-b", "noisy", "sqrt", "blend"])
    assert found["noisy"].copy_of == "honest-a" and found["noisy"].max_rank_corr > 0.95
    assert found["sqrt"].copy_of == "honest-b" and found["sqrt"].max_rank_corr == 1.0
    assert found["blend"].copy_of is not None and found["blend"].explained > 0.9
    assert all(found[m].contribution < 0.2 for m in ("noisy", "sqrt", "blend"))
    assert found["honest-a"].copy_of is None and found["honest-b"].copy_of is None


def test_the_later_submitter_is_the_copy_whatever_it_claims() -> None:
    a, _ = _honest_pair()
    copy = np.clip(a + np.random.default_rng(4).normal(0, 0.02, N), 0, 1)
    found = _judge({"honest-a": a, "copier": copy}, ["honest-a", "copier"])
    assert found["copier"].copy_of == "honest-a" and found["honest-a"].copy_of is None
    flipped = _judge({"honest-a": a, "copier": copy}, ["copier", "honest-a"])
    assert flipped["honest-a"].copy_of == "copier"  # order is the only thing that decides


def test_a_blend_below_the_threshold_still_contributes_little() -> None:
    a, b = _honest_pair()
    rng = np.random.default_rng(2)
    near_blend = 0.5 * a + 0.5 * b + rng.normal(0, 0.05, N)
    found = _judge({"honest-a": a, "honest-b": b, "blend": near_blend}, ["honest-a", "honest-b", "blend"])
    assert found["blend"].explained > 0.75
    assert found["blend"].contribution < found["honest-b"].contribution


def test_helpers() -> None:
    assert centred_ranks(np.array([3.0, 1.0, np.nan, 2.0, 2.0])).tolist()[:2] == [0.375, -0.375]
    assert np.isnan(centred_ranks(np.array([np.nan]))[0])
    x = np.arange(50, dtype=float)
    assert explained_share(2 * x + 1, x[:, None]) == 1.0
    assert explained_share(np.ones(50), x[:, None]) == 0.0
