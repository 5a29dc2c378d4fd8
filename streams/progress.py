"""Progress lines for long commands: one timestamped line per step on stderr.

with step("generating 10000 alerts"):
    ...                     # prints the step, then "done in 1.2s"
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextmanager
def step(message: str) -> Iterator[None]:
    say(f"{message} ...")
    started = time.perf_counter()
    yield
    say(f"{message}: done in {time.perf_counter() - started:.1f}s")
