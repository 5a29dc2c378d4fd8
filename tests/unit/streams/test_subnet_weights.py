"""Subnet weights normalised like the Bittensor SDK emits them, against hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from streams.errors import ConfigError
from streams.subnet_weights import convert_weights_and_uids_for_emit, normalize_max_weight, subnet_weights


def test_two_miners_without_a_cap() -> None:
    # 0.7 / 0.3: the largest is scaled to 65535, 0.3 / 0.7 * 65535 = 28086.43 -> 28086
    rows = subnet_weights([("miner-b", "kb", 0.3), ("miner-a", "ka", 0.7)], max_weight_limit=1.0)
    assert [(r.miner_id, r.key, r.uid, r.weight_u16) for r in rows] == [
        ("miner-a", "ka", 0, 65535),
        ("miner-b", "kb", 1, 28086),
    ]
    assert [r.weight for r in rows] == pytest.approx([0.7, 0.3], abs=1e-6)


def test_the_max_weight_cap_clips_the_largest_and_renormalises() -> None:
    # capping [0.6, 0.2, 0.1, 0.1] at 0.4: cutoff c with c / (c + 0.4) = 0.4 -> c = 4/15, so the
    # normalised weights are [0.4, 0.3, 0.15, 0.15] and the u16 values 65535, 0.75 * 65535 = 49151.25,
    # 0.375 * 65535 = 24575.6 -> 24576
    miners = [("a", "", 0.6), ("b", "", 0.2), ("c", "", 0.1), ("d", "", 0.1)]
    rows = subnet_weights(miners, max_weight_limit=0.4)
    assert [r.weight_u16 for r in rows] == [65535, 49151, 24576, 24576]
    assert [r.weight for r in rows] == pytest.approx([0.4, 0.3, 0.15, 0.15], abs=1e-6)


def test_zeros_are_dropped_and_nothing_earned_emits_nothing() -> None:
    rows = subnet_weights([("a", "", 0.5), ("copier", "", 0.0), ("b", "", 0.5)], max_weight_limit=1.0)
    assert [(r.miner_id, r.uid, r.weight_u16) for r in rows] == [("a", 0, 65535), ("b", 1, 65535)]
    assert subnet_weights([("a", "", 0.0), ("b", "", float("nan"))]) == []
    # a tiny weight that rounds to 0 in u16 is dropped like the SDK does
    assert convert_weights_and_uids_for_emit(np.array([0, 1]), np.array([1.0, 1e-6], dtype=np.float32)) == (
        [0],
        [65535],
    )


def test_uids_come_from_a_map_when_given() -> None:
    rows = subnet_weights([("a", "", 1.0), ("b", "", 1.0)], uids={"a": 7, "b": 3})
    assert [(r.miner_id, r.uid) for r in rows] == [("a", 7), ("b", 3)]
    with pytest.raises(ConfigError, match="no uid"):
        subnet_weights([("a", "", 1.0)], uids={})


def test_a_cap_too_low_for_the_set_gives_uniform_weights_like_the_sdk() -> None:
    assert normalize_max_weight(np.array([0.9, 0.1], dtype=np.float32), limit=0.4).tolist() == [0.5, 0.5]
