"""Run every benchmark and print one table: ``python -m bench [--only sot miner ...]``.

Each module exposes ``run() -> list[dict]`` rows (component, case, value, unit, baseline,
ratio); baselines are measured in the same run on the same machine. Each module's rows are
written to ``bench/results/<module>.md`` with when and at what load they were measured, so a
``--only`` run replaces just its own rows; ``bench/results/latest.md`` is all of them in one page.
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
    "producer",
    "validator",
    "validator_workers",
    "sink",
    "gateway",
    "end_to_end",
    "miner_scale",
    "end_to_end_scale",
    "weights",
)
OPT_IN = ("soak", "end_to_end_day")  # minutes long: only with --only


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=MODULES + OPT_IN, default=list(MODULES))
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    by_module: dict[str, list[dict[str, Any]]] = {}
    measured: dict[str, str] = {}
    failed = []
    for name in args.only:
        started = time.perf_counter()
        print(f"== bench {name} ...", flush=True)
        try:
            by_module[name] = importlib.import_module(f"bench.bench_{name}").run()
            rows += by_module[name]
            measured[name] = _measured()
        except Exception:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
        print(f"== bench {name}: {time.perf_counter() - started:.0f}s", flush=True)
    print()
    print_rows(rows)
    results = Path(__file__).with_name("results")
    for name, module_rows in by_module.items():
        (results / f"{name}.md").write_text(f"{measured[name]}\n\n{markdown(module_rows)}\n")
    _write_latest(results)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


def _measured() -> str:
    cores = len(os.sched_getaffinity(0))
    machine = f"{platform.machine()}, {cores} cores, Python {platform.python_version()}"
    load = os.getloadavg()[0]  # how busy the machine was over the last minute of the module's run
    return f"Measured {time.strftime('%Y-%m-%d %H:%M')} on {machine}; load average {load:.1f} at its end"


def _write_latest(results: Path) -> None:
    """One page of every module's newest rows, in the order the modules run."""
    sections = [
        f"## {name}\n\n{(results / f'{name}.md').read_text().strip()}"
        for name in MODULES + OPT_IN
        if (results / f"{name}.md").exists()
    ]
    (results / "latest.md").write_text("# Benchmark results\n\n" + "\n\n".join(sections) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
