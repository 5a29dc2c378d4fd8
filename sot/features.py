"""Per-address features of one window, computed from its money flows like an analytics pipeline.

Degrees, volumes, counts, sizes, reciprocity, velocity and structuring come straight from the
edges; pagerank is a weighted power iteration; clustering coefficient is estimated by sampling
wedges; k-hop counts are walk counts capped at the graph size; betweenness is approximated by
flow through-put. The three anomaly scores are the data owner's own noisy detectors.

    table = compute_features(universe, flows, rng, window_days=7, end=date(2026, 1, 2))
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from sot.flows import DAY_MS, STRUCTURING_BAND, Flows
from sot.universe import EPOCH, F64, I64, Bools, Universe, day_number

_WEDGE_SAMPLES = 12
_PAGERANK_STEPS = 20


@dataclass(frozen=True, slots=True)
class Features:
    """Feature columns by row; ``node`` holds the universe index of each row (ascending)."""

    node: I64
    columns: dict[str, np.ndarray]

    def col(self, name: str) -> np.ndarray:
        return self.columns[name]


def robust_z(x: F64) -> F64:
    """(x - median) / MAD, clipped: scale-free scores that heavy tails do not dominate."""
    med = np.median(x)
    mad = np.median(np.abs(x - med)) + 1e-9
    z: F64 = np.clip((x - med) / (1.4826 * mad), -6.0, 6.0)
    return z


def sigmoid(x: F64) -> F64:
    return 1.0 / (1.0 + np.exp(-x))


def _pagerank(n: int, src: I64, dst: I64, weight: F64) -> F64:
    out_w = np.bincount(src, weights=weight, minlength=n)
    share = weight / out_w[src]
    rank = np.full(n, 1.0 / n)
    dangling = out_w == 0
    for _ in range(_PAGERANK_STEPS):
        spread = np.bincount(dst, weights=rank[src] * share, minlength=n)
        rank = 0.15 / n + 0.85 * (spread + rank[dangling].sum() / n)
    return rank


def _clustering(n: int, src: I64, dst: I64, rng: np.random.Generator) -> tuple[F64, I64, I64, I64]:
    """Sampled clustering coefficient and the undirected neighbour lists (keys, indptr, neighbours)."""
    a = np.concatenate([src, dst])
    b = np.concatenate([dst, src])
    keys = np.unique(a * n + b)
    left, right = keys // n, keys % n
    degree = np.bincount(left, minlength=n)
    indptr = np.concatenate([[0], np.cumsum(degree)])
    nodes = np.flatnonzero(degree >= 2)
    cc = np.zeros(n)
    if len(nodes):
        d = np.repeat(degree[nodes], _WEDGE_SAMPLES)
        base = np.repeat(indptr[nodes], _WEDGE_SAMPLES)
        r1 = (rng.random(len(d)) * d).astype(np.int64)
        r2 = (rng.random(len(d)) * (d - 1)).astype(np.int64)
        r2 += r2 >= r1
        probe = right[base + r1] * n + right[base + r2]
        pos = np.minimum(np.searchsorted(keys, probe), len(keys) - 1)
        closed = (keys[pos] == probe).reshape(len(nodes), _WEDGE_SAMPLES)
        cc[nodes] = closed.mean(axis=1)
    return cc, left, right, degree


def compute_features(u: Universe, f: Flows, rng: np.random.Generator, *, window_days: int, end: dt.date) -> Features:
    n, w = u.size, window_days
    src, dst = f.src, f.dst
    node = np.flatnonzero(np.bincount(np.concatenate([src, dst]), minlength=n) > 0)

    def per(idx: I64, weights: np.ndarray | None = None) -> F64:
        return np.bincount(idx, weights=weights, minlength=n).astype(np.float64)

    deg_in, deg_out = per(dst), per(src)
    total_in, total_out = per(dst, f.amount), per(src, f.amount)
    tx_in, tx_out = per(dst, f.tx_count), per(src, f.tx_count)
    edge_avg = f.amount / f.tx_count
    max_tx = np.zeros(n)
    np.maximum.at(max_tx, src, edge_avg)
    np.maximum.at(max_tx, dst, edge_avg)
    max_tx *= 1.0 + rng.exponential(0.3, n)  # the largest transfer exceeds the largest edge average
    active = np.zeros(n, dtype=np.int64)
    np.maximum.at(active, src, f.active_days)
    np.maximum.at(active, dst, f.active_days)
    last_ms = np.zeros(n, dtype=np.int64)
    np.maximum.at(last_ms, src, f.last_ms)
    np.maximum.at(last_ms, dst, f.last_ms)
    first_edge_ms = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_edge_ms, src, f.first_ms)
    np.minimum.at(first_edge_ms, dst, f.first_ms)

    tx_total = tx_in + tx_out
    days = np.maximum(active, 1).astype(np.float64)
    burst = np.log1p(tx_total / days) * np.sqrt(w / days)
    recip = np.divide(per(src, f.bidirectional.astype(np.float64)), deg_out, out=np.zeros(n), where=deg_out > 0)
    passthrough = np.divide(
        np.minimum(total_in, total_out), np.maximum(total_in, total_out), out=np.zeros(n), where=total_in > 0
    )
    velocity = passthrough * np.sqrt(1.0 / days) * np.sqrt(np.minimum(tx_total, 20.0) / 20.0)
    in_band = ((edge_avg >= STRUCTURING_BAND[0]) & (edge_avg < STRUCTURING_BAND[1])) * f.tx_count.astype(np.float64)
    structuring = np.divide(per(src, in_band) + per(dst, in_band), tx_total, out=np.zeros(n), where=tx_total > 0)

    pagerank = _pagerank(n, src, dst, f.amount)
    cc, left, right, khop1 = _clustering(n, src, dst, rng)
    walks2 = np.bincount(left, weights=khop1[right].astype(np.float64), minlength=n)
    walks3 = np.bincount(left, weights=walks2[right], minlength=n)
    cap = float(len(node) - 1)
    through = deg_in * deg_out * passthrough
    betweenness = through / max(float(through.max()), 1.0)

    # the owner's detectors: unsupervised on behaviour, graph exposure from its own intelligence
    day = day_number(end)
    public_risky = (u.label_day < day) & (u.label_risk >= 2)
    exposure_true = per(src, f.amount * u.risky[dst]) + per(dst, f.amount * u.risky[src])
    exposure_public = per(src, f.amount * public_risky[dst]) + per(dst, f.amount * public_risky[src])
    volume = total_in + total_out
    share_true = np.divide(exposure_true, volume, out=np.zeros(n), where=volume > 0)
    share_public = np.divide(exposure_public, volume, out=np.zeros(n), where=volume > 0)
    behavioral = sigmoid(
        0.5 * robust_z(burst)
        + 0.6 * robust_z(velocity)
        + 1.2 * structuring
        - 0.3 * robust_z(np.log1p(deg_in + deg_out))
        + rng.normal(0.0, 1.0, n)
    )
    graph = sigmoid(2.0 * share_true + 2.5 * share_public - 1.0 + 0.4 * robust_z(pagerank) + rng.normal(0.0, 1.0, n))
    global_ = sigmoid(1.2 * (behavioral - 0.5) + 1.2 * (graph - 0.5) + rng.normal(0.0, 0.6, n))

    big = deg_in + deg_out >= np.quantile((deg_in + deg_out)[node], 0.98)
    exchange_like = big & (recip > 0.05) & (rng.random(n) < 0.9)
    mixer_like = (deg_in >= 5) & (deg_out >= 5) & (passthrough > 0.7) & (recip < 0.1) & (rng.random(n) < 0.85)

    birth_ms = (
        np.array([int(dt.datetime.combine(EPOCH, dt.time(), dt.UTC).timestamp()) * 1000], dtype=np.int64)
        + u.birth_day * DAY_MS
    )
    first_seen = np.minimum(np.where(u.birth_day <= day, birth_ms, first_edge_ms), first_edge_ms)

    def i32(x: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.minimum(x, 2**31 - 1).astype(np.int32)[node]
        return out

    def f64(x: np.ndarray, digits: int = 6) -> np.ndarray:
        return np.round(x.astype(np.float64)[node], digits)

    columns: dict[str, np.ndarray] = {
        "address": u.addresses[node],
        "degree_in": i32(deg_in),
        "degree_out": i32(deg_out),
        "total_in_usd": f64(total_in, 2),
        "total_out_usd": f64(total_out, 2),
        "tx_in_count": i32(tx_in),
        "tx_out_count": i32(tx_out),
        "avg_tx_in_usd": f64(np.divide(total_in, tx_in, out=np.zeros(n), where=tx_in > 0), 2),
        "avg_tx_out_usd": f64(np.divide(total_out, tx_out, out=np.zeros(n), where=tx_out > 0), 2),
        "max_tx_usd": f64(max_tx, 2),
        "activity_days": i32(active),
        "burst_factor": f64(burst),
        "reciprocity_ratio": f64(recip),
        "velocity_score": f64(velocity),
        "structuring_score": f64(structuring),
        "pagerank": f64(pagerank, 9),
        "betweenness": f64(betweenness, 9),
        "clustering_coefficient": f64(cc),
        "khop1_count": i32(khop1),
        "khop2_count": i32(np.minimum(walks2, cap)),
        "khop3_count": i32(np.minimum(walks3, cap)),
        "behavioral_anomaly_score": f64(behavioral),
        "graph_anomaly_score": f64(graph),
        "global_anomaly_score": f64(global_),
        "is_exchange_like": exchange_like[node],
        "is_mixer_like": mixer_like[node],
        "first_seen": first_seen[node],
        "last_seen": last_ms[node],
    }
    return Features(node=node, columns=columns)


def public_risky_mask(u: Universe, day: int) -> Bools:
    return (u.label_day < day) & (u.label_risk >= 2)
