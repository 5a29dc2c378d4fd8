"""The data owner's alert engine: which addresses get alerts, with what typology and confidence.

It sees only what is observable (the window's features and public labels), so its
``alert_confidence_score`` is an honest but imperfect rule score. Related alerts are grouped
into clusters along money flows; a few unambiguous alerts become the validator's traps.

    alerts = raise_alerts(universe, flows, features, rng, count=1000, day=day_number(date))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sot.features import Features, robust_z, sigmoid
from sot.flows import Flows
from sot.universe import (
    CLASSES,
    EXCHANGE,
    F64,
    I64,
    MIXER,
    NORMAL,
    REGULAR,
    SANCTIONED,
    SCAM,
    Universe,
)

TYPOLOGIES = (
    "fan_in",
    "fan_out",
    "layering",
    "structuring",
    "mixer_interaction",
    "rapid_movement",
    "sanctions_exposure",
    "large_volume",
    "round_trip",
)
_CODES = ("FIN", "FOUT", "LAYR", "STRC", "MIXR", "RAPD", "SANC", "LVOL", "RTRP")
_TITLES = (
    "Fan-in",
    "Fan-out",
    "Layering",
    "Structuring",
    "Mixer interaction",
    "Rapid movement",
    "Sanctions exposure",
    "Large volume",
    "Round trip",
)
_CLUSTER_TYPES = (
    "fan_in_network",
    "distribution_network",
    "layering_chain",
    "structuring_ring",
    "mixer_network",
    "rapid_movement_network",
    "sanctioned_network",
    "high_value_network",
    "cycle",
)
RISK_INDICATORS = (
    "high_fan_in",
    "high_fan_out",
    "high_velocity",
    "structuring",
    "mixer_exposure",
    "new_address",
    "burst_activity",
    "listed_counterparty",
    "round_trip",
    "large_volume",
)
_BASE = np.array([0.0, -0.3, 0.0, -0.2, -0.2, -0.4, -0.6, -0.3, -0.5])
_SEVERITIES = ("low", "medium", "high", "critical")
MAX_CLUSTER_ALERTS = 25


@dataclass(frozen=True, slots=True)
class Alerts:
    """Alert columns by row, plus the feature row and universe index each alert is about."""

    row: I64  # feature row of the alerted address
    node: I64  # universe index of the alerted address
    typology: I64
    confidence: F64
    severity: I64
    volume: F64
    pattern_id: list[str]
    suspected_type: list[str]
    indicators: list[list[str]]
    description: list[str]


def _pattern_scores(ft: Features, public_risky: np.ndarray, young: np.ndarray) -> tuple[F64, dict[str, F64]]:
    c = ft.columns
    deg_in = c["degree_in"].astype(np.float64)
    deg_out = c["degree_out"].astype(np.float64)
    volume = c["total_in_usd"] + c["total_out_usd"]
    z = {
        "fan_in": robust_z(np.log1p(deg_in)),
        "fan_out": robust_z(np.log1p(deg_out)),
        "velocity": robust_z(c["velocity_score"]),
        "burst": robust_z(c["burst_factor"]),
        "volume": robust_z(np.log1p(volume)),
        "graph": (c["graph_anomaly_score"] - 0.5) * 4.0,
        "between": robust_z(np.log1p(c["betweenness"] * 1e6)),
        "cc": robust_z(c["clustering_coefficient"]),
        "recip": robust_z(c["reciprocity_ratio"]),
    }
    struct = c["structuring_score"]
    mixer_like = c["is_mixer_like"].astype(np.float64)
    scores = np.stack(
        [
            0.8 * z["fan_in"] + 0.8 * young + 0.3 * z["burst"],
            0.8 * z["fan_out"] + 0.3 * z["burst"],
            0.7 * z["velocity"] + 0.3 * z["between"],
            6.0 * struct - 0.5,
            0.6 * z["graph"] + 1.5 * mixer_like,
            0.6 * z["burst"] + 0.4 * z["velocity"],
            2.5 * public_risky + 0.4 * z["graph"] - 0.5,
            0.8 * z["volume"],
            0.5 * z["cc"] + 0.5 * z["recip"],
        ],
        axis=1,
    )
    return scores, z


def raise_alerts(u: Universe, ft: Features, rng: np.random.Generator, *, count: int, day: int) -> Alerts:
    """Choose ``count`` distinct (address, typology) alerts, most suspicious-looking first."""
    node = ft.node
    public_risky = ((u.label_day < day) & (u.label_risk >= 2))[node].astype(np.float64)
    age_days = day - np.minimum(u.birth_day[node], day)
    young = (age_days < 45).astype(np.float64)
    scores, z = _pattern_scores(ft, public_risky, young)
    logits = 1.3 * scores + _BASE + rng.normal(0.0, 0.6, scores.shape)
    # Gumbel top-k: a weighted draw without replacement of (address, typology) pairs
    keyed = (logits + rng.gumbel(size=logits.shape)).ravel()
    chosen = np.argpartition(-keyed, count - 1)[:count]
    chosen = chosen[rng.permutation(count)]  # alert numbers must not reveal the draw order
    row, typ = chosen // len(TYPOLOGIES), chosen % len(TYPOLOGIES)

    strength = scores[row, typ]
    c = ft.columns
    rule = (
        0.35 * strength
        + 1.2 * public_risky[row]
        + 0.5 * z["graph"][row]
        + 1.5 * c["structuring_score"][row]
        + 0.3 * young[row]
    )
    confidence = sigmoid(rule - 0.6 + rng.normal(0.0, 0.8, count))
    vol_in, vol_out = c["total_in_usd"][row], c["total_out_usd"][row]
    volume = np.select([typ == 0, typ == 1], [vol_in, vol_out], (vol_in + vol_out) / 2.0)
    sev_score = confidence + 0.08 * z["volume"][row] + rng.normal(0.0, 0.08, count)
    severity = np.searchsorted(np.array([0.45, 0.72, 0.9]), sev_score).astype(np.int64)
    bucket = np.clip((sigmoid(strength) * 10).astype(np.int64), 0, 9)
    pattern_id = [f"{_CODES[t]}-{b:02d}" for t, b in zip(typ.tolist(), bucket.tolist(), strict=True)]

    labelled = (u.label_day < day)[node][row]
    label_cls = u.label_class[node][row]
    mixer_like = c["is_mixer_like"][row]
    exchange_like = c["is_exchange_like"][row]
    suspected = [
        CLASSES[lc] if lab else "mixer" if mx else "exchange" if ex else _guess(t, yg)
        for lab, lc, mx, ex, t, yg in zip(
            labelled.tolist(),
            label_cls.tolist(),
            mixer_like.tolist(),
            exchange_like.tolist(),
            typ.tolist(),
            young[row].tolist(),
            strict=True,
        )
    ]
    flags = {
        "high_fan_in": z["fan_in"][row] > 2.0,
        "high_fan_out": z["fan_out"][row] > 2.0,
        "high_velocity": z["velocity"][row] > 1.5,
        "structuring": c["structuring_score"][row] > 0.2,
        "mixer_exposure": (c["graph_anomaly_score"][row] > 0.75) | mixer_like,
        "new_address": young[row] > 0,
        "burst_activity": z["burst"][row] > 1.5,
        "listed_counterparty": public_risky[row] > 0,
        "round_trip": (c["clustering_coefficient"][row] > 0.2) & (c["reciprocity_ratio"][row] > 0.2),
        "large_volume": z["volume"][row] > 2.0,
    }
    names = list(RISK_INDICATORS)
    matrix = np.stack([flags[k] for k in names], axis=1)
    indicators = [[names[j] for j in np.flatnonzero(r)] for r in matrix]
    description = [
        f"{_TITLES[t]}: {di} in / {do} out counterparties, ${v:,.0f} over {d} active days"
        for t, di, do, v, d in zip(
            typ.tolist(),
            c["degree_in"][row].tolist(),
            c["degree_out"][row].tolist(),
            volume.tolist(),
            c["activity_days"][row].tolist(),
            strict=True,
        )
    ]
    return Alerts(
        row=row.astype(np.int64),
        node=node[row].astype(np.int64),
        typology=typ.astype(np.int64),
        confidence=np.round(confidence, 6),
        severity=severity,
        volume=np.round(volume, 2),
        pattern_id=pattern_id,
        suspected_type=suspected,
        indicators=indicators,
        description=description,
    )


def _guess(typology: int, young: float) -> str:
    if typology == 0 and young:
        return "scam"
    if typology in (2, 3):
        return "mule"
    return "unknown"


def severity_name(level: int) -> str:
    return _SEVERITIES[level]


def typology_name(typology: int) -> str:
    return TYPOLOGIES[typology]


def cluster_type_name(typology: int) -> str:
    return _CLUSTER_TYPES[typology]


def group_clusters(
    n: int, flows: Flows, alerts: Alerts, rng: np.random.Generator, *, count: int
) -> list[tuple[int, list[int]]]:
    """Up to ``count`` clusters as (seed alert, member alerts): alerts on addresses one hop apart."""
    if count <= 0:
        return []
    a = np.concatenate([flows.src, flows.dst])
    b = np.concatenate([flows.dst, flows.src])
    order = np.argsort(a, kind="stable")
    neighbours = b[order]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(a, minlength=n))])

    by_node: dict[int, list[int]] = {}
    for i, node in enumerate(alerts.node.tolist()):
        by_node.setdefault(node, []).append(i)
    alerted = np.zeros(n, dtype=bool)
    alerted[alerts.node] = True

    assigned = np.zeros(len(alerts.node), dtype=bool)
    weight = alerts.confidence * np.log1p(alerts.volume) * rng.uniform(0.5, 1.5, len(alerts.node))
    clusters: list[tuple[int, list[int]]] = []
    for seed in np.argsort(-weight, kind="stable").tolist():
        if assigned[seed]:
            continue
        home = int(alerts.node[seed])
        near = neighbours[indptr[home] : indptr[home + 1]]
        near = np.unique(near[alerted[near]])
        members = [i for i in by_node[home] if not assigned[i]]
        for other in near.tolist():
            members.extend(i for i in by_node[other] if not assigned[i])
            if len(members) >= MAX_CLUSTER_ALERTS:
                break
        members = members[:MAX_CLUSTER_ALERTS]
        if len(members) < 2:
            continue
        assigned[members] = True
        clusters.append((seed, sorted(members)))
        if len(clusters) == count:
            break
    return clusters


def choose_traps(u: Universe, alerts: Alerts, rng: np.random.Generator) -> tuple[I64, I64]:
    """About 1% of alerts (at least 10) whose truth is unambiguous: (alert rows, expected labels)."""
    total = len(alerts.node)
    want = min(total, max(10, round(total * 0.01)))
    node = alerts.node
    certain_bad = np.isin(u.cls[node], [SANCTIONED, MIXER]) | ((u.cls[node] == SCAM) & (u.risk[node] == 3))
    certain_good = (u.cls[node] == EXCHANGE) & (u.risk[node] == 0) | (
        (u.cls[node] == NORMAL) & (u.persona[node] == REGULAR) & (u.risk[node] == 0)
    )
    bad = rng.permutation(np.flatnonzero(certain_bad))
    good = rng.permutation(np.flatnonzero(certain_good))
    take_bad = min(len(bad), want // 2 + want % 2)
    take_good = min(len(good), want - take_bad)
    picked = np.concatenate([bad[:take_bad], good[:take_good]])
    if len(picked) < want:  # too few unambiguous ones: any alert's truth is still known
        rest = rng.permutation(np.setdiff1d(np.arange(total), picked))
        picked = np.concatenate([picked, rest[: want - len(picked)]])
    picked = np.sort(picked).astype(np.int64)
    return picked, u.risky[node[picked]].astype(np.int64)
