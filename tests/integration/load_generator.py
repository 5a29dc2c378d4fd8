"""Load from a second process: hit a list of paths for a fixed time, print status counts as JSON.

python load_generator.py http://127.0.0.1:9000 SECONDS CONCURRENCY PATH [PATH ...]
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections import Counter

import httpx
import orjson


async def main() -> None:
    base, seconds, concurrency, *paths = sys.argv[1:]
    deadline = time.monotonic() + float(seconds)
    statuses: Counter[str] = Counter()
    cycle = itertools.cycle(paths)

    async def worker(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            try:
                answer = await client.get(next(cycle))
                statuses[str(answer.status_code)] += 1
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(int(concurrency))))
    print(orjson.dumps(statuses).decode())


if __name__ == "__main__":
    asyncio.run(main())
