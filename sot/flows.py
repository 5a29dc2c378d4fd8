"""Daily money flows: who paid whom within the window, drawn from laundering typologies.

Each typology joins a source pool to a destination pool (fan-in to scams, layering between
mules, cash-out to exchanges, mixer in/out, sanctioned cycles, plus the ordinary payments that
dominate). Edges are aggregated per (from, to) pair over the window, like ``money_flows``.

    flows = draw_flows(universe, rng, flows=50_000, window_days=7, end=date(2026, 1, 2))
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from sot.universe import (
    EXCHANGE,
    F64,
    GAMBLING,
    I64,
    MERCHANT,
    MIXER,
    MULE,
    NORMAL,
    OTC,
    PAYROLL,
    PRIVACY,
    SANCTIONED,
    SCAM,
    SERVICE,
    TRADER,
    Bools,
    Universe,
)

DAY_MS = 86_400_000
STRUCTURING_BAND = (8_000.0, 10_000.0)  # just under the 10k reporting threshold


@dataclass(frozen=True, slots=True)
class Flows:
    """Aggregated edges of one window, as universe indexes (sorted by from, to)."""

    src: I64
    dst: I64
    tx_count: I64
    amount: F64
    first_ms: I64
    last_ms: I64
    active_days: I64
    reciprocity: F64
    bidirectional: Bools

    def __len__(self) -> int:
        return len(self.src)


@dataclass(frozen=True, slots=True)
class _Pool:
    members: I64
    cumulative: F64

    def draw(self, rng: np.random.Generator, size: int) -> I64:
        picks = np.searchsorted(self.cumulative, rng.random(size) * self.cumulative[-1], side="right")
        chosen: I64 = self.members[np.minimum(picks, len(self.members) - 1)]
        return chosen


def _pool(parts: list[tuple[Bools, F64, float]]) -> _Pool | None:
    """Union of address groups, each with member weights and a share of the draws."""
    members: list[I64] = []
    weights: list[F64] = []
    for mask, weight, share in parts:
        idx = np.flatnonzero(mask)
        if len(idx) == 0 or share <= 0 or weight[idx].sum() <= 0:
            continue
        w = weight[idx]
        members.append(idx.astype(np.int64))
        weights.append(share * w / w.sum())
    if not members:
        return None
    return _Pool(np.concatenate(members), np.cumsum(np.concatenate(weights)))


def _pools(u: Universe) -> dict[str, _Pool | None]:
    c, p, act = u.cls, u.persona, u.activity
    normal = c == NORMAL
    push = act * (0.4 + u.intensity)
    loud = push * (1.0 - u.stealth)
    return {
        # ordinary payments; stealthy risky actors blend in here
        "p2p": _pool(
            [
                (normal, act, 0.85),
                (np.isin(c, [SCAM, MULE, SANCTIONED, GAMBLING]), act * u.stealth, 0.1),
                (c == SERVICE, act, 0.05),
            ]
        ),
        "normal": _pool([(normal, act, 1.0)]),
        "exchange": _pool([(c == EXCHANGE, act, 1.0)]),
        "commerce": _pool([(c == SERVICE, act, 0.5), (normal & (p == MERCHANT), act, 0.5)]),
        "merchant": _pool([(normal & (p == MERCHANT), act, 1.0)]),
        "service": _pool([(c == SERVICE, act, 1.0)]),
        "payroll": _pool([(normal & (p == PAYROLL), act, 1.0)]),
        "otc": _pool([(normal & (p == OTC), act, 1.0)]),
        "otc_client": _pool([(normal & (p != OTC), act, 0.6), (c == EXCHANGE, act, 0.4)]),
        "gambling": _pool([(c == GAMBLING, push, 1.0)]),
        "scam": _pool([(c == SCAM, push, 1.0)]),
        "mule": _pool([(c == MULE, act * u.intensity, 1.0)]),
        "launder": _pool([(c == MULE, push, 0.5), (c == MIXER, act, 0.25), (c == EXCHANGE, act, 0.25)]),
        "exit": _pool([(c == EXCHANGE, act, 0.5), (c == SERVICE, act, 0.2), (normal, act, 0.3)]),
        "mix_users": _pool(
            [
                (normal & (p == PRIVACY), act, 0.45),
                (c == SCAM, loud, 0.2),
                (c == MULE, loud, 0.2),
                (c == SANCTIONED, act, 0.15),
            ]
        ),
        "mixer": _pool([(c == MIXER, act, 1.0)]),
        "mix_receivers": _pool(
            [
                (normal & (p == PRIVACY), act, 0.3),
                (normal & (p != PRIVACY), act, 0.2),
                (c == MULE, push, 0.25),
                (c == SANCTIONED, act, 0.1),
                (c == EXCHANGE, act, 0.15),
            ]
        ),
        "sanctioned": _pool([(c == SANCTIONED, act, 1.0)]),
        "shady": _pool([(c == MIXER, act, 0.4), (c == MULE, push, 0.4), (c == SANCTIONED, act, 0.2)]),
        "cycle": _pool([(c == SANCTIONED, act, 0.4), (c == MULE, act * (u.intensity > 0.5), 0.6)]),
        "any": _pool([(np.ones(u.size, dtype=bool), np.ones(u.size), 1.0)]),
    }


# name, source pool, destination pool, share of edges, extra tx per edge, amount model
_TYPOLOGIES: tuple[tuple[str, str, str, float, float, str], ...] = (
    ("p2p", "p2p", "p2p", 0.36, 1.5, "src"),
    ("deposit", "normal", "exchange", 0.09, 1.2, "src"),
    ("withdraw", "exchange", "normal", 0.09, 1.2, "dst"),
    ("commerce", "normal", "commerce", 0.08, 1.0, "retail"),
    ("sweep", "merchant", "exchange", 0.015, 1.0, "sweep"),
    ("payout", "service", "normal", 0.03, 1.0, "dst"),
    ("payroll", "payroll", "normal", 0.025, 0.3, "payroll"),
    ("otc_in", "otc_client", "otc", 0.012, 1.5, "dst"),
    ("otc_out", "otc", "otc_client", 0.012, 1.5, "src"),
    ("bet", "normal", "gambling", 0.03, 2.0, "retail"),
    ("win", "gambling", "normal", 0.02, 0.8, "retail"),
    ("victim", "normal", "scam", 0.06, 0.3, "retail"),
    ("scam_out", "scam", "launder", 0.035, 1.5, "src"),
    ("layer", "mule", "mule", 0.03, 1.5, "src"),
    ("cashout", "mule", "exit", 0.025, 1.5, "src"),
    ("mix_in", "mix_users", "mixer", 0.025, 1.0, "src"),
    ("mix_out", "mixer", "mix_receivers", 0.025, 1.0, "dst"),
    ("sanction", "sanctioned", "shady", 0.012, 2.0, "src"),
    ("noise", "any", "any", 0.015, 0.5, "src"),
)
_CYCLE_SHARE = 0.008


def _traits(u: Universe) -> tuple[I64, I64, I64]:
    """Per address: structuring propensity, burst (share of days active), tx multiplier, as arrays."""
    c, p = u.cls, u.persona
    loud = u.intensity * (1.0 - u.stealth)
    structuring = np.select(
        [c == MULE, c == SANCTIONED, c == SCAM, p == PAYROLL, p == OTC, p == TRADER, c == GAMBLING],
        [0.5 * loud, 0.3 * (1 - u.stealth), 0.1, 0.45, 0.4, 0.06, 0.05],
        0.01,
    )
    active = np.select(
        [c == EXCHANGE, c == SERVICE, c == MIXER, c == GAMBLING, c == SCAM, c == MULE, c == SANCTIONED, p == OTC],
        [0.95, 0.9, 0.8, 0.7, 0.12 + 0.6 * u.stealth, 0.2 + 0.6 * u.stealth, 0.3, 0.35],
        0.5,
    )
    burst = np.where(np.isin(c, [SCAM, MULE, SANCTIONED]), 1.0 + 2.5 * loud, np.where(p == OTC, 2.0, 1.0))
    return structuring, active, burst


def _typology_edges(
    u: Universe, pools: dict[str, _Pool | None], rng: np.random.Generator, total: int, only: tuple[str, ...] = ()
) -> tuple[I64, I64, I64, F64]:
    structuring, _, burst = _traits(u)
    srcs, dsts, txs, amounts = [], [], [], []
    for name, src_pool, dst_pool, share, extra_tx, model in _TYPOLOGIES:
        if only and name not in only:
            continue
        sp, dp = pools[src_pool], pools[dst_pool]
        n = int(round(total * share / (sum(t[3] for t in _TYPOLOGIES if t[0] in only) if only else 1.0)))
        if sp is None or dp is None or n == 0:
            continue
        src, dst = sp.draw(rng, n), dp.draw(rng, n)
        tx = 1 + rng.poisson(extra_tx * np.maximum(burst[src], burst[dst]))
        if model == "src":
            per_tx = rng.lognormal(np.log(u.tx_size[src]), 0.7)
        elif model == "dst":
            per_tx = rng.lognormal(np.log(u.tx_size[dst]), 0.7)
        elif model == "retail":
            per_tx = rng.lognormal(np.log(250.0), 1.1, n)
        elif model == "sweep":
            per_tx = rng.lognormal(np.log(u.tx_size[src] * 8.0), 0.6)
        else:  # payroll
            per_tx = rng.uniform(1_500.0, 9_900.0, n)
        structured = rng.random(n) < structuring[src]
        per_tx = np.where(structured, rng.uniform(*STRUCTURING_BAND, n) * 0.999, per_tx)
        srcs.append(src)
        dsts.append(dst)
        txs.append(tx)
        amounts.append(per_tx * tx)
    if not only:
        cyc = _cycle_edges(pools["cycle"], rng, int(total * _CYCLE_SHARE))
        if cyc is not None:
            srcs.append(cyc[0])
            dsts.append(cyc[1])
            txs.append(cyc[2])
            amounts.append(cyc[3])
    return np.concatenate(srcs), np.concatenate(dsts), np.concatenate(txs), np.concatenate(amounts)


def _cycle_edges(pool: _Pool | None, rng: np.random.Generator, edges: int) -> tuple[I64, I64, I64, F64] | None:
    """Round trips a -> b -> ... -> a that return most of the money to where it started."""
    if pool is None or edges < 3:
        return None
    sizes = rng.integers(3, 6, size=max(1, edges // 4))
    members = pool.draw(rng, int(sizes.sum()))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pos = np.arange(len(members)) - np.repeat(starts, sizes)
    nxt = np.repeat(starts, sizes) + (pos + 1) % np.repeat(sizes, sizes)
    base = np.repeat(rng.lognormal(np.log(20_000.0), 0.8, len(sizes)), sizes)
    amount = base * 0.97**pos
    tx = 1 + rng.poisson(2.0, len(members))
    return members, members[nxt], tx, amount * tx / tx.mean()


def _aggregate(n: int, src: I64, dst: I64, tx: I64, amount: F64) -> tuple[I64, I64, I64, I64, F64]:
    keep = src != dst
    key = src[keep] * n + dst[keep]
    order = np.argsort(key, kind="stable")
    key, tx, amount = key[order], tx[keep][order], amount[keep][order]
    uniq, first = np.unique(key, return_index=True)
    return uniq, uniq // n, uniq % n, np.add.reduceat(tx, first), np.add.reduceat(amount, first)


def draw_flows(u: Universe, rng: np.random.Generator, *, flows: int, window_days: int, end: dt.date) -> Flows:
    """Exactly ``flows`` distinct (from, to) edges of the window ending on ``end``."""
    pools = _pools(u)
    n = u.size
    key, src, dst, tx, amount = _aggregate(n, *_typology_edges(u, pools, rng, int(flows * 1.12)))
    while len(key) < flows:  # duplicates ate into the target: top up with ordinary payments
        extra = _typology_edges(u, pools, rng, int((flows - len(key)) * 1.5) + 64, only=("p2p", "deposit", "noise"))
        key, src, dst, tx, amount = _aggregate(
            n,
            np.concatenate([src, extra[0]]),
            np.concatenate([dst, extra[1]]),
            np.concatenate([tx, extra[2]]),
            np.concatenate([amount, extra[3]]),
        )
    if len(key) > flows:
        chosen = np.sort(rng.permutation(len(key))[:flows])
        key, src, dst, tx, amount = key[chosen], src[chosen], dst[chosen], tx[chosen], amount[chosen]

    _, active_p, _ = _traits(u)
    p = np.minimum(active_p[src], active_p[dst])
    active = 1 + rng.binomial(np.minimum(tx, window_days) - 1, p)
    first_day = rng.integers(0, window_days - active + 1)
    last_day = np.minimum(first_day + active - 1 + rng.integers(0, window_days, len(key)) // 3, window_days - 1)
    start_ms = int(dt.datetime.combine(end - dt.timedelta(days=window_days - 1), dt.time(), dt.UTC).timestamp()) * 1000
    first_ms = start_ms + first_day * DAY_MS + rng.integers(0, DAY_MS // 2, len(key))
    last_ms = start_ms + last_day * DAY_MS + DAY_MS // 2 + rng.integers(0, DAY_MS // 2, len(key))

    reverse = dst * n + src
    pos = np.minimum(np.searchsorted(key, reverse), len(key) - 1)
    bidirectional = key[pos] == reverse
    back = np.where(bidirectional, amount[pos], 0.0)
    reciprocity = np.where(bidirectional, np.minimum(amount, back) / np.maximum(amount, back), 0.0)
    return Flows(
        src=src,
        dst=dst,
        tx_count=tx.astype(np.int64),
        amount=np.round(amount, 2),
        first_ms=first_ms.astype(np.int64),
        last_ms=last_ms.astype(np.int64),
        active_days=active.astype(np.int64),
        reciprocity=reciprocity,
        bidirectional=bidirectional,
    )
