"""Miner weights in the form a Bittensor subnet validator emits them (shared by validator and gateway).

The steps follow the Bittensor SDK (``bittensor/utils/weight_utils.py``): ``process_weights``
keeps the positive weights (dropping the lowest ``exclude_quantile``), caps each at
``max_weight_limit`` and renormalises (``normalize_max_weight``), all in float32; then
``convert_weights_and_uids_for_emit`` scales by the largest weight to u16 (65535 = the largest),
rounds half to even like Python's ``round``, and drops zeros.

    rows = subnet_weights([("miner-a", "", 0.7), ("miner-b", "", 0.3)], max_weight_limit=1.0)
    [(r.miner_id, r.uid, r.weight_u16) for r in rows]   # [("miner-a", 0, 65535), ("miner-b", 1, 28086)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from streams.errors import ConfigError

U16_MAX = 65535
_EPSILON = 1e-7  # the SDK's numerical-stability term
Floats = npt.NDArray[np.float32]


def normalize_max_weight(x: Floats, limit: float = 0.1) -> Floats:
    """``x`` scaled to sum 1 with no element above ``limit`` (the largest ones clipped to a common cutoff)."""
    weights = x.astype(np.float32).copy()
    values = np.sort(weights)
    if x.sum() == 0 or x.shape[0] * limit <= 1:
        return np.asarray(np.ones_like(x) / x.shape[0], dtype=np.float32)
    estimation = values / values.sum()
    if estimation.max() <= limit:
        return np.asarray(weights / weights.sum(), dtype=np.float32)
    cumsum = np.cumsum(estimation, 0)
    n = len(values)
    tails = np.array([(n - i - 1) * estimation[i] for i in range(n)])
    n_values = int((estimation / (tails + cumsum + _EPSILON) < limit).sum())
    cutoff_scale = (limit * cumsum[n_values - 1] - _EPSILON) / (1 - (limit * (n - n_values)))
    cutoff = cutoff_scale * values.sum()
    weights[weights > cutoff] = cutoff
    return np.asarray(weights / weights.sum(), dtype=np.float32)


def process_weights(
    uids: npt.NDArray[np.int64],
    weights: npt.ArrayLike,
    *,
    num_neurons: int,
    min_allowed_weights: int,
    max_weight_limit: float,
    exclude_quantile: int = 0,
) -> tuple[npt.NDArray[np.int64], Floats]:
    """(uids, normalised float32 weights) as ``process_weights_for_netuid`` returns them."""
    w = np.asarray(weights, dtype=np.float32)
    quantile = exclude_quantile / U16_MAX
    nonzero = np.argwhere(w > 0).squeeze(axis=1)
    nz_uids, nz_weights = uids[nonzero], w[nonzero]
    if nz_weights.size == 0 or num_neurons < min_allowed_weights:
        return np.arange(num_neurons), (np.ones(num_neurons, dtype=np.int64) / num_neurons).astype(np.float32)
    if nz_weights.size < min_allowed_weights:
        padded = np.ones(num_neurons, dtype=np.int64) * 1e-5
        padded[nonzero] += nz_weights
        normalised = normalize_max_weight(padded.astype(np.float32), limit=max_weight_limit)
        return np.arange(len(normalised)), normalised
    max_exclude = max(0, len(nz_weights) - min_allowed_weights) / len(nz_weights)
    lowest = np.quantile(nz_weights, min(quantile, max_exclude))
    keep = lowest <= nz_weights
    return nz_uids[keep], normalize_max_weight(nz_weights[keep], limit=max_weight_limit)


def convert_weights_and_uids_for_emit(uids: npt.NDArray[np.int64], weights: Floats) -> tuple[list[int], list[int]]:
    """(uids, u16 weights) to send: max-upscaled to 65535, rounded, zeros dropped."""
    values, ids = [float(v) for v in weights.tolist()], [int(u) for u in uids.tolist()]
    if not values:
        return [], []
    if min(values) < 0:
        msg = f"a weight is negative and cannot be emitted: {values}"
        raise ConfigError(msg)
    if min(ids) < 0:
        msg = f"a uid is negative and cannot be emitted: {ids}"
        raise ConfigError(msg)
    if sum(values) == 0:
        return [], []
    top = max(values)
    emitted_uids, emitted = [], []
    for value, uid in zip(values, ids, strict=True):
        u16 = round(value / top * U16_MAX)
        if u16 != 0:
            emitted_uids.append(uid)
            emitted.append(u16)
    return emitted_uids, emitted


@dataclass(frozen=True, slots=True)
class SubnetWeight:
    """One miner's emitted weight: normalised (sums to 1 over the emitted set) and as the u16 sent."""

    miner_id: str
    key: str
    uid: int
    raw_weight: float
    weight: float
    weight_u16: int


def subnet_weights(
    miners: Sequence[tuple[str, str, float]],
    *,
    max_weight_limit: float = 1.0,
    min_allowed_weights: int = 0,
    exclude_quantile: int = 0,
    uids: Mapping[str, int] | None = None,
) -> list[SubnetWeight]:
    """The weights to emit for ``(miner_id, key, weight)`` rows; uid = position by miner id unless given."""
    ordered = sorted(miners)
    if not ordered:
        return []
    uid_of = dict(uids) if uids is not None else {m: i for i, (m, _, _) in enumerate(ordered)}
    missing = [m for m, _, _ in ordered if m not in uid_of]
    if missing:
        msg = f"no uid for miner(s) {', '.join(missing)}"
        raise ConfigError(msg)
    uid_array = np.array([uid_of[m] for m, _, _ in ordered], dtype=np.int64)
    raw = np.array([max(0.0, float(w)) if np.isfinite(w) else 0.0 for _, _, w in ordered])
    if not (raw > 0).any():
        return []  # nothing earned a weight: emit nothing rather than the SDK's uniform fallback
    kept_uids, normalised = process_weights(
        uid_array,
        raw,
        num_neurons=max(len(ordered), int(uid_array.max()) + 1),
        min_allowed_weights=min_allowed_weights,
        max_weight_limit=max_weight_limit,
        exclude_quantile=exclude_quantile,
    )
    emit_uids, emit_values = convert_weights_and_uids_for_emit(kept_uids, normalised)
    by_uid = {int(u): float(w) for u, w in zip(kept_uids.tolist(), normalised.tolist(), strict=True)}
    u16_of = dict(zip(emit_uids, emit_values, strict=True))
    rows = []
    for (miner_id, key, weight), uid in zip(ordered, uid_array.tolist(), strict=True):
        if uid in u16_of:
            rows.append(SubnetWeight(miner_id, key, int(uid), float(weight), by_uid[uid], u16_of[uid]))
    return rows
