"""Run every benchmark and print one table: ``python -m bench [--only sot miner ...]``.

Each module exposes ``run() -> list[dict]`` rows (component, case, value, unit, baseline,
ratio); baselines are measured in the same run on the same machine. The Markdown table is
also written to ``bench/results/latest.md`` for the README.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import time
import traceback
from pathlib import Path
from typing import Any

from bench.table import markdown, print_rows

MODULES = (
    "sot",
    "miner",
    "outside_miners",
    "signing",
    "validator",
    "gateway",
    "end_to_end",
    "miner_scale",
    "end_to_end_scale",
)
OPT_IN = ("soak",)  # minutes long: only with --only


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=MODULES + OPT_IN, default=list(MODULES))
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    failed = []
    for name in args.only:
        started = time.perf_counter()
        print(f"== bench {name} ...", flush=True)
        try:
            rows += importlib.import_module(f"bench.bench_{name}").run()
        except Exception:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
        print(f"== bench {name}: {time.perf_counter() - started:.0f}s", flush=True)
    print()
    print_rows(rows)
    cores = len(os.sched_getaffinity(0))
    machine = f"{platform.machine()}, {cores} cores, Python {platform.python_version()}"
    results = Path(__file__).with_name("results")
    results.mkdir(exist_ok=True)
    (results / "latest.md").write_text(f"Measured {time.strftime('%Y-%m-%d')} on {machine}\n\n{markdown(rows)}\n")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
