"""Scrape a running service's prometheus-client ``/metrics`` until it shows what a test expects."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, tuple[tuple[str, str], ...]]  # metric name, sorted labels


def metrics_reach(
    home: Path, service: str, expected: dict[Sample, float], timeout: float = 30.0
) -> dict[Sample, float]:
    """The ``/metrics`` a running service serves beside its announced ``/health``, once it shows ``expected``."""
    url = json.loads((home / "services" / f"{service}.json").read_text())["url"]
    deadline = time.monotonic() + timeout
    while True:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        found = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        if all(found.get(k) == v for k, v in expected.items()) or time.monotonic() > deadline:
            assert {k: found.get(k) for k in expected} == expected
            return found
        time.sleep(0.5)
