"""Prometheus text metrics of the gateway: requests by route and status, latency, and the sink.

metrics = GatewayMetrics()
metrics.observe("/health", 200, 0.002)
text = metrics.render(sink_stats)
"""

from __future__ import annotations

import bisect
from collections import defaultdict

from streams.warehouse import SinkStats

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class GatewayMetrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.cache_hits = 0
        self.cache_misses = 0

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests[(route, status)] += 1
        counts = self.buckets.setdefault(route, [0] * (len(BUCKETS) + 1))
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sums[route] += seconds
        self.counts[route] += 1

    def render(self, sink: SinkStats | None, pending_markers: int = 0) -> str:
        lines = [
            "# HELP riskstream_gateway_requests_total HTTP requests by route and status.",
            "# TYPE riskstream_gateway_requests_total counter",
        ]
        for (route, status), n in sorted(self.requests.items()):
            lines.append(f'riskstream_gateway_requests_total{{route="{_label(route)}",status="{status}"}} {n}')
        lines += [
            "# HELP riskstream_gateway_request_seconds Request latency by route.",
            "# TYPE riskstream_gateway_request_seconds histogram",
        ]
        for route, counts in sorted(self.buckets.items()):
            label = _label(route)
            cumulative = 0
            for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                cumulative += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f'riskstream_gateway_request_seconds_bucket{{route="{label}",le="{le}"}} {cumulative}')
            lines.append(f'riskstream_gateway_request_seconds_sum{{route="{label}"}} {self.sums[route]:.6f}')
            lines.append(f'riskstream_gateway_request_seconds_count{{route="{label}"}} {self.counts[route]}')
        lines += [
            "# HELP riskstream_gateway_cache_total Answers served from the cache (hit) or the warehouse (miss).",
            "# TYPE riskstream_gateway_cache_total counter",
            f'riskstream_gateway_cache_total{{result="hit"}} {self.cache_hits}',
            f'riskstream_gateway_cache_total{{result="miss"}} {self.cache_misses}',
        ]
        if sink is not None:
            lines += _sink_lines(sink, pending_markers)
        return "\n".join(lines) + "\n"


def _sink_lines(sink: SinkStats, pending_markers: int) -> list[str]:
    lines = [
        "# HELP riskstream_sink_rows_total Rows inserted into the warehouse by table.",
        "# TYPE riskstream_sink_rows_total counter",
    ]
    lines += [f'riskstream_sink_rows_total{{table="{_label(t)}"}} {n}' for t, n in sorted(sink.rows.items())]
    lines += [
        "# HELP riskstream_sink_records_total Records consumed by record type.",
        "# TYPE riskstream_sink_records_total counter",
    ]
    lines += [f'riskstream_sink_records_total{{record="{_label(r)}"}} {n}' for r, n in sorted(sink.records.items())]
    for name, kind, value, doc in (
        ("undecodable_total", "counter", sink.undecodable, "Records that are not Avro we know (logged, skipped)."),
        ("rejected_total", "counter", sink.rejected, "Decoded records the warehouse does not store (logged)."),
        ("inserts_total", "counter", sink.inserts, "Insert statements."),
        ("insert_failures_total", "counter", sink.insert_failures, "Insert statements that failed (retried)."),
        ("commits_total", "counter", sink.commits, "Offset commits after inserts."),
        ("forced_batches_total", "counter", sink.forced_batches, "Batch markers written before all their rows."),
        ("pending_batches", "gauge", pending_markers, "Batch markers waiting for their rows."),
        ("lag_seconds", "gauge", round(sink.lag_seconds, 3), "Now minus produce time of the newest inserted record."),
        ("last_insert_timestamp_seconds", "gauge", round(sink.last_insert_at, 3), "Unix time of the last insert."),
    ):
        lines += [f"# HELP riskstream_sink_{name} {doc}", f"# TYPE riskstream_sink_{name} {kind}"]
        lines.append(f"riskstream_sink_{name} {value}")
    return lines
