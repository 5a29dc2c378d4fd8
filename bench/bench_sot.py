"""Benchmark: generate and publish a full-size SOT batch to a file store.

10k alerts / 50k addresses / 500 clusters / 1M flows (target: under 60 s), against a baseline
measured in the same run: pyarrow writing the same number of rows of random data.

    .venv/bin/python -m bench.bench_sot
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sot.generator import generate_batch, to_parquet
from sot.publisher import write_batch
from streams.objectstore import FileObjectStore

SIZES = {"alerts": 10_000, "addresses": 50_000, "flows": 1_000_000, "clusters": 500, "seed": 7}
DATE = dt.date(2026, 1, 15)
TARGET_S = 60.0


def _random_tables(rows: dict[str, int]) -> dict[str, pa.Table]:
    rng = np.random.default_rng(0)
    return {
        name: pa.table(
            {
                "key": pa.array(rng.integers(0, 1 << 40, n).astype(str)),
                "a": rng.random(n),
                "b": rng.integers(0, 1000, n).astype(np.int32),
                "c": rng.random(n),
            }
        )
        for name, n in rows.items()
    }


def run() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    batch = generate_batch("ethereum", DATE, **SIZES)
    generated = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        store = FileObjectStore(Path(tmp))
        t0 = time.perf_counter()
        write_batch(store, batch)
        uploaded = time.perf_counter() - t0
        t0 = time.perf_counter()
        counts = {name: table.num_rows for name, table in batch.tables.items()}
        baseline_store = FileObjectStore(Path(tmp) / "baseline")
        for name, table in _random_tables(counts).items():
            baseline_store.put(name, to_parquet(table))
        baseline = time.perf_counter() - t0
    total = generated + uploaded
    rows.append(
        {
            "component": "sot",
            "case": "generate 10k alerts / 1M flows",
            "value": round(generated, 2),
            "unit": "s",
            "baseline": None,
            "ratio": None,
        }
    )
    rows.append(
        {
            "component": "sot",
            "case": "write batch to file store",
            "value": round(uploaded, 2),
            "unit": "s",
            "baseline": round(baseline, 2),
            "ratio": round(uploaded / baseline, 2),
        }
    )
    rows.append(
        {
            "component": "sot",
            "case": "generate + publish (target < 60 s)",
            "value": round(total, 2),
            "unit": "s",
            "baseline": TARGET_S,
            "ratio": round(total / TARGET_S, 3),
        }
    )
    flows_per_s = SIZES["flows"] / total
    rows.append(
        {
            "component": "sot",
            "case": "flows generated+published per second",
            "value": round(flows_per_s),
            "unit": "rows/s",
            "baseline": None,
            "ratio": None,
        }
    )
    return rows


def main() -> None:
    rows = run()
    print(f"{'component':<10} {'case':<42} {'value':>12} {'unit':<7} {'baseline':>9} {'ratio':>7}")
    for r in rows:
        base = "" if r["baseline"] is None else r["baseline"]
        ratio = "" if r["ratio"] is None else r["ratio"]
        print(f"{r['component']:<10} {r['case']:<42} {r['value']:>12} {r['unit']:<7} {base!s:>9} {ratio!s:>7}")


if __name__ == "__main__":
    main()
