"""Benchmark: the gateway's requests/s and latency next to a bare Sanic hello-world served the same way.

A 10k-alert day (plus a second day) is loaded into chDB through the warehouse sink, then
``riskstream warehouse sink`` (its own process, owning the chDB path and serving its reads) and
``riskstream gateway serve`` (single process, no access log, reading through the sink) answer
top-100 rankings and the full day with the answer cache on, with it off (version rankings kept),
and with both off (SQL pages); the baseline is a bare Sanic app returning ``{"status": "ok"}``
with orjson, same serving mode, same run. Load comes from ``wrk`` in its own process
(``apt-get install -y wrk``).

    .venv/bin/python -m bench.bench_gateway
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.table import print_rows
from streams.stack import free_port, start_broker, stop_process_group, wait_for_broker

ALERTS = 10_000
DAY, OTHER_DAY = dt.date(2026, 1, 15), dt.date(2026, 1, 14)
DURATION_S = 5
CONNECTIONS = 16
DISTINCT_DAYS = 2_000
BIN = Path(sys.executable).parent

_LOAD = """
import datetime as dt, sys, time
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from simulation import as_messages, as_published, sample_date
from streams.codec import AvroCodec
from streams.schema_registry import FileSchemaRegistry
from streams.signing import VALIDATOR, Signer
from streams.settings import StackSettings
from streams.topics import TopicNames
from streams.warehouse_schema import connect
from warehouse.sink import WarehouseSink
codec = AvroCodec(FileSchemaRegistry.default())
client = connect(StackSettings(_env_file=None, clickhouse_url=sys.argv[1]))
signer = Signer(Ed25519PrivateKey.generate(), VALIDATOR)
sink = WarehouseSink(client, "bench", TopicNames(), codec, validator_key=signer.public_key)
sink.ensure_tables()
took = 0.0
for day, alerts in ((dt.date.fromisoformat(sys.argv[2]), int(sys.argv[3])), (dt.date.fromisoformat(sys.argv[4]), 1000)):
    records = sample_date(codec, TopicNames(), day, alerts=alerts, clusters=500, miners=("m1", "m2", "m3", "m4", "m5"))
    messages = as_messages(as_published(records, signer, TopicNames()))
    started = time.perf_counter()  # the sink's writes only: making and signing the records is not timed
    for start in range(0, len(messages), 5000):
        sink.write(messages[start : start + 5000])
    took += time.perf_counter() - started
total = "riskstream_sink_rows_total"
rows = sum(s.value for m in sink.metrics.registry.collect() for s in m.samples if s.name == total)
print(f"{int(rows)} {took:.3f}")
"""

_HELLO = """
import sys, orjson
from sanic import Sanic
from sanic.response import raw
app = Sanic("hello")
app.config.AUTO_EXTEND = False
@app.get("/health")
async def health(request):
    return raw(orjson.dumps({"status": "ok"}), content_type="application/json")
app.run(host="127.0.0.1", port=int(sys.argv[1]), single_process=True, access_log=False, motd=False)
"""


@contextmanager
def _server(command: list[str], port: int, env: dict[str, str], cwd: Path, ready: str = "/health") -> Iterator[str]:
    log = open(cwd / f"server-{port}.log", "wb")  # noqa: SIM115 closed below
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    _PIDS[url] = process.pid
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}{ready}", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {(cwd / f'server-{port}.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _wrk(url: str) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "--timeout", "10s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _ms(re.search(r"50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
    }
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors on {url}:\n{out}")
    return found


_PIDS: dict[str, int] = {}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _distinct_full_days(url: str, path: str, n: int) -> tuple[float, float]:
    """Gateway RSS (MiB) before and after ``n`` distinct full-day requests (each a new cache key)."""
    before = _rss_mb(_PIDS[url])
    base = path[: path.index("limit=")]
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(n):
            client.get(f"{base}limit={ALERTS + 1 + i}").raise_for_status()
    return before, _rss_mb(_PIDS[url])


def _cold(url: str, path: str, n: int = 15) -> tuple[float, float, int]:
    """Sequential requests with the answer cache off: p50 and max ms, body bytes."""
    times, size = [], 0
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            answer = client.get(path)  # served with the answer cache off: every request is built again
            times.append((time.perf_counter() - t0) * 1000)
            answer.raise_for_status()
            size = len(answer.content)
            assert len(answer.json()["ensemble_scores"]) == ALERTS
    return statistics.median(times), max(times), size


def _row(case: str, value: float, unit: str, baseline: float | None) -> dict[str, Any]:
    ratio = round(value / baseline, 3) if baseline else None
    return {
        "component": "gateway",
        "case": case,
        "value": round(value, 2),
        "unit": unit,
        "baseline": baseline,
        "ratio": ratio,
    }


def run() -> list[dict[str, Any]]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        chdb = f"chdb://{work / 'chdb'}"
        loaded = subprocess.run(
            [sys.executable, "-c", _LOAD, chdb, DAY.isoformat(), str(ALERTS), OTHER_DAY.isoformat()],
            capture_output=True, text=True, check=True, cwd=work,
        ).stdout.split()  # fmt: skip
        rows.append(
            _row(
                f"load {ALERTS}-alert day through the sink (rows/s)", int(loaded[0]) / float(loaded[1]), "rows/s", None
            )
        )

        port = free_port()
        with _server([sys.executable, "-c", _HELLO, str(port)], port, dict(os.environ), work) as url:
            hello = _wrk(f"{url}/health")
        rows.append(_row("hello-world /health req/s (baseline)", hello["rps"], "req/s", hello["rps"]))
        rows.append(_row("hello-world /health p50", hello["p50"], "ms", hello["p50"]))
        rows.append(_row("hello-world /health p99", hello["p99"], "ms", hello["p99"]))

        top100 = f"/ensemble/rankings/alerts/{DAY}?limit=100"
        full_day = f"/ensemble/scores/alerts/{DAY}?limit={ALERTS}"
        broker_port, reads_port = free_port(), free_port()
        broker = start_broker(broker_port, work / "broker.log")
        wait_for_broker(f"127.0.0.1:{broker_port}")
        stack_env = dict(os.environ) | {
            "RISKSTREAM_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port}", "RISKSTREAM_CLICKHOUSE_URL": chdb,
            "RISKSTREAM_WAREHOUSE_READS_URL": f"http://127.0.0.1:{reads_port}", "WAREHOUSE_DATABASE": "bench",
        }  # fmt: skip
        sink = [str(BIN / "riskstream"), "warehouse", "sink"]
        with contextlib.ExitStack() as running:
            running.callback(stop_process_group, broker.pid)
            running.enter_context(_server(sink, reads_port, stack_env, work, ready="/ping"))
            rows += _gateway_rows(work, stack_env, hello, top100, full_day)
    return rows


def _gateway_rows(
    work: Path, stack_env: dict[str, str], hello: dict[str, float], top100: str, full_day: str
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    configs = (
        ("cache on", str(256 << 20), "256"),
        ("answer cache off, version ranking kept", "0", "256"),
        ("no cache (SQL pages)", "0", "0"),
    )
    rates: dict[tuple[str, str], float] = {}
    size = 0
    for label, cache, ranking_mb in configs:
        env = stack_env | {
            "GATEWAY_DATABASE": "bench", "GATEWAY_CACHE_MAX_BYTES": cache, "GATEWAY_RANKING_CACHE_MB": ranking_mb,
        }  # fmt: skip
        port = free_port()
        serve = [str(BIN / "riskstream"), "gateway", "serve", "--port", str(port)]
        with _server(serve, port, env, work) as url:
            for name, path in (("top-100 rankings", top100), (f"full {ALERTS}-alert day", full_day)):
                found = _wrk(url + path)
                rates[(label, name)] = found["rps"]
                rows.append(_row(f"{name}, {label}: req/s", found["rps"], "req/s", hello["rps"]))
                rows.append(_row(f"{name}, {label}: p50", found["p50"], "ms", hello["p50"]))
                rows.append(_row(f"{name}, {label}: p99", found["p99"], "ms", hello["p99"]))
            if cache != "0":
                before, after = _distinct_full_days(url, full_day, DISTINCT_DAYS)
                budget = int(cache) / 2**20
                rows.append(_row(f"RSS before {DISTINCT_DAYS} distinct full-day requests", before, "MiB", None))
                rows.append(
                    _row(
                        f"RSS after them (baseline: before + {budget:.0f} MiB cache budget)",
                        after,
                        "MiB",
                        before + budget,
                    )
                )
            if cache == "0":
                p50, worst, size = _cold(url, full_day)
                rows.append(_row(f"full {ALERTS}-alert day, one client, {label}: p50", p50, "ms", None))
                rows.append(_row(f"full {ALERTS}-alert day, one client, {label}: max", worst, "ms", None))
    rows.append(_row(f"full {ALERTS}-alert day body", size / 1e6, "MB", None))
    for label, _, _ in configs[1:]:
        for name in ("top-100 rankings", f"full {ALERTS}-alert day"):
            cached = rates[("cache on", name)]
            rows.append(_row(f"{name}, {label} / cache on (req/s ratio)", rates[(label, name)], "req/s", cached))
    return rows


def main() -> None:
    print_rows(run())


if __name__ == "__main__":
    main()
