"""Small batches shared by the SOT unit tests (generation is deterministic, so caching is safe)."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from sot.generator import GeneratedBatch, generate_batch

SMALL = {"alerts": 600, "addresses": 3000, "flows": 24_000, "clusters": 30, "seed": 11}
DAY = dt.date(2026, 3, 10)


@lru_cache(maxsize=32)
def small_batch(date: dt.date = DAY, network: str = "ethereum", seed: int = 11) -> GeneratedBatch:
    return generate_batch(network, date, **{**SMALL, "seed": seed})
