"""The hidden address universe of a network: who is who, fixed by the seed and shared by all days.

Every address has a hidden class (normal, exchange, service, gambling, scam, mule, mixer,
sanctioned), a hidden risk level, and latent traits (activity, typical transaction size,
intensity, stealth, persona) that drive its daily flows. Public labels appear on a fixed day
per address, are partial and sometimes wrong.

    universe = build_universe("ethereum", addresses=5000, seed=7)
    universe.risky[universe.index_of("0x...")]
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from sot.errors import SotInputError
from streams.batch import check_network
from streams.errors import ConfigError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

EPOCH = dt.date(2025, 1, 1)
NEVER = 1 << 30

CLASSES = ("normal", "exchange", "service", "gambling", "scam", "mule", "mixer", "sanctioned")
NORMAL, EXCHANGE, SERVICE, GAMBLING, SCAM, MULE, MIXER, SANCTIONED = range(len(CLASSES))
_CLASS_SHARE = np.array([0.70, 0.025, 0.045, 0.04, 0.07, 0.075, 0.025, 0.02])

# benign personas; merchants look like scams, OTC desks and payroll like mules, privacy users touch mixers
PERSONAS = ("regular", "trader", "merchant", "payroll", "privacy", "otc")
REGULAR, TRADER, MERCHANT, PAYROLL, PRIVACY, OTC = range(len(PERSONAS))
_PERSONA_SHARE = np.array([0.74, 0.06, 0.07, 0.045, 0.045, 0.04])

RISK_LEVELS = ("low", "medium", "high", "critical")

# what a public label calls each class, and who publishes such labels
_LABEL_TEXT = (
    "retail wallet",
    "exchange hot wallet",
    "defi protocol",
    "online gambling",
    "phishing scam",
    "money mule",
    "coin mixer",
    "sanctioned entity",
)
_LABEL_SOURCE = (
    "community_report",
    "exchange_attestation",
    "protocol_registry",
    "community_report",
    "scam_database",
    "law_enforcement",
    "chain_analytics",
    "ofac_sdn",
)
# share of each class that is ever publicly labelled, and the spread of when
_LABEL_SHARE = np.array([0.015, 0.8, 0.5, 0.4, 0.3, 0.08, 0.55, 0.7])


def network_code(network: str) -> int:
    try:
        check_network(network)
    except ConfigError as exc:
        raise SotInputError(str(exc)) from None
    return zlib.crc32(network.encode())


def day_number(date: dt.date) -> int:
    """Days since the universe epoch (negative before it)."""
    return (date - EPOCH).days


@dataclass(frozen=True, slots=True)
class Universe:
    """Hidden truth and latent traits of every address of one network (arrays by address index)."""

    network: str
    seed: int
    addresses: npt.NDArray[np.object_]
    cls: I64
    persona: I64  # meaningful for normals only
    risk: I64  # 0 low .. 3 critical, the hidden truth
    activity: F64
    tx_size: F64  # median transaction size in USD
    intensity: F64  # how hard a risky actor pushes its typology, 0..1
    stealth: F64  # how much a risky actor mimics normal behaviour, 0..1
    birth_day: I64  # day number of the address's first activity
    label_day: I64  # day number its public label appears (NEVER if it never does)
    label_class: I64  # the class the public label claims (may be wrong)
    label_risk: I64
    label_confidence: F64

    @property
    def size(self) -> int:
        return len(self.addresses)

    @property
    def risky(self) -> Bools:
        """Truly high or critical risk: the ground truth of an alert."""
        return self.risk >= 2


def _address_strings(network: str, rng: np.random.Generator, n: int) -> npt.NDArray[np.object_]:
    raw = rng.integers(0, 256, size=(n, 20), dtype=np.uint8)
    hexes = [row.tobytes().hex() for row in raw]
    if network == "bitcoin":
        out = ["bc1q" + h[:38] for h in hexes]
    elif network == "tron":
        out = ["T" + h[:33] for h in hexes]
    else:
        out = ["0x" + h for h in hexes]
    return np.array(out, dtype=object)


@lru_cache(maxsize=8)
def build_universe(network: str, addresses: int, seed: int) -> Universe:
    """The address universe of ``network``: a pure function of (network, addresses, seed)."""
    if addresses < 200:
        msg = f"need at least 200 addresses, got {addresses}"
        raise SotInputError(msg)
    rng = np.random.default_rng([seed & 0xFFFFFFFF, network_code(network), 0x0A11])
    n = addresses
    cls = rng.choice(len(CLASSES), size=n, p=_CLASS_SHARE).astype(np.int64)
    persona = np.where(cls == NORMAL, rng.choice(len(PERSONAS), size=n, p=_PERSONA_SHARE), REGULAR).astype(np.int64)
    intensity = rng.beta(2.0, 2.0, size=n)
    stealth = np.where(np.isin(cls, [SCAM, MULE, MIXER, SANCTIONED, GAMBLING]), rng.beta(2.0, 3.0, size=n), 0.0)

    risk = np.zeros(n, dtype=np.int64)
    u = rng.random(n)
    risk[(cls == NORMAL) & (u < 0.08)] = 1
    risk[(cls == EXCHANGE) & (u < 0.2)] = 1
    risk[cls == GAMBLING] = np.where(intensity[cls == GAMBLING] > 0.68, 2, 1)
    risk[cls == SCAM] = np.where(u[cls == SCAM] < 0.3, 3, 2)
    # unwitting mules move little and are only medium risk
    risk[cls == MULE] = np.where(intensity[cls == MULE] > 0.32, 2, 1)
    risk[cls == MIXER] = np.where(u[cls == MIXER] < 0.5, 3, 2)
    risk[cls == SANCTIONED] = 3
    # behaviour does not tell everything: insiders and compromised wallets look benign,
    # some risky-looking actors are never confirmed
    flip = rng.random(n)
    risk[(risk == 0) & (flip < 0.05)] = 2
    risk[np.isin(cls, [SCAM, MULE, MIXER, GAMBLING]) & (risk >= 2) & (flip < 0.2)] = 1

    activity = rng.lognormal(0.0, 0.9, size=n)
    activity *= np.select(
        [cls == EXCHANGE, cls == SERVICE, cls == MIXER, cls == GAMBLING, persona == TRADER, persona == MERCHANT],
        [40.0, 6.0, 8.0, 5.0, 4.0, 3.0],
        1.0,
    )
    activity *= np.where(persona == OTC, 2.0, 1.0)
    tx_size = rng.lognormal(np.log(400.0), 1.1, size=n)
    tx_size *= np.select(
        [
            cls == EXCHANGE,
            cls == SANCTIONED,
            cls == MIXER,
            cls == MULE,
            persona == TRADER,
            cls == SERVICE,
            persona == OTC,
            persona == PAYROLL,
        ],
        [6.0, 3.0, 2.0, 1.5, 8.0, 3.0, 5.0, 2.0],
        1.0,
    )

    birth = rng.integers(-1500, -30, size=n)
    young = (np.isin(cls, [SCAM, MULE]) & (rng.random(n) < 0.8 - 0.5 * stealth)) | (
        (cls == NORMAL) & (rng.random(n) < 0.3)
    )
    birth = np.where(young, rng.integers(-150, 700, size=n), birth)

    label_share = _LABEL_SHARE[cls] * np.where(np.isin(cls, [MULE, SCAM]), 0.5 + intensity, 1.0)
    labelled = rng.random(n) < label_share
    delay = rng.exponential(90.0, size=n).astype(np.int64)
    label_day = np.where(labelled, np.maximum(birth, -400) + delay + rng.integers(0, 300, size=n), NEVER)
    # a labelled retail wallet is a false community report; some labels name the wrong class
    label_class = cls.copy()
    label_class[cls == NORMAL] = rng.choice([SCAM, MULE, GAMBLING], size=int((cls == NORMAL).sum()))
    wrong = rng.random(n) < 0.06
    label_class[wrong] = rng.integers(0, len(CLASSES), size=int(wrong.sum()))
    label_risk = np.clip(risk + rng.choice([-1, 0, 0, 0, 0, 0, 1], size=n), 0, 3)
    label_risk[cls == NORMAL] = rng.choice([1, 2], size=int((cls == NORMAL).sum()))
    label_conf = np.clip(
        np.where(cls == NORMAL, rng.uniform(0.15, 0.55, n), rng.uniform(0.55, 0.99, n)) - 0.25 * wrong, 0.05, 0.99
    )

    return Universe(
        network=network,
        seed=seed,
        addresses=_address_strings(network, rng, n),
        cls=cls,
        persona=persona,
        risk=risk,
        activity=activity,
        tx_size=tx_size,
        intensity=intensity,
        stealth=stealth,
        birth_day=birth.astype(np.int64),
        label_day=label_day.astype(np.int64),
        label_class=label_class,
        label_risk=label_risk.astype(np.int64),
        label_confidence=label_conf,
    )


def label_text(cls: int) -> str:
    return _LABEL_TEXT[cls]


def label_source(cls: int) -> str:
    return _LABEL_SOURCE[cls]
