"""Request statistics from RequestRecords, and OTel metrics through a pull reader.

Both render as JSON objects for `/debug/vars`. Bounded: at most `MAX_ROUTES` routes (the
rest are counted under `<other>`); histograms are fixed buckets, so memory does not grow with
traffic.
"""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    Sum,
)

from otel_bridge._scoreboard import COUNTERS, current
from otel_bridge.exporters.expvar._format import go_quote, json_float, json_value
from otel_bridge.record import RecordExporter, RequestRecord, route_or_path

__all__ = ["ExpvarMetricReader", "RequestStats", "ScoreboardWriter"]

MAX_ROUTES = 1000
OTHER = "<other>"
# Milliseconds; the HTTP semantic conventions' duration buckets.
BUCKETS_MS = (5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)


def _quantile(
    bounds: Sequence[float], counts: Sequence[int], low: float, high: float, fraction: float
) -> float:
    """Estimate a quantile from bucket counts (linear inside the bucket, clamped to min/max)."""
    total = sum(counts)
    if total == 0:
        return 0.0
    rank = fraction * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = bounds[index - 1] if index > 0 else low
            upper = bounds[index] if index < len(bounds) else high
            lower, upper = max(lower, low), min(upper, high)
            if upper <= lower:
                return lower
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return high


class _Route:
    __slots__ = ("buckets", "classes", "count", "errors", "max", "min", "sum")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = 0.0
        self.classes = [0, 0, 0, 0, 0, 0]  # other, 1xx … 5xx
        self.buckets = [0] * (len(BUCKETS_MS) + 1)

    def add(self, milliseconds: float, status_class: int, error: bool, bucket: int) -> None:
        """Count one request (`status_class` 1-5, else 0; `bucket` from `bisect_left`)."""
        self.count += 1
        self.sum += milliseconds
        if milliseconds < self.min:
            self.min = milliseconds
        if milliseconds > self.max:
            self.max = milliseconds
        self.classes[status_class] += 1
        if error:
            self.errors += 1
        self.buckets[bucket] += 1

    def render(self) -> str:
        low = 0.0 if self.count == 0 else self.min
        fields: list[tuple[str, str]] = [
            ("count", str(self.count)),
            ("errors", str(self.errors)),
            ("1xx", str(self.classes[1])),
            ("2xx", str(self.classes[2])),
            ("3xx", str(self.classes[3])),
            ("4xx", str(self.classes[4])),
            ("5xx", str(self.classes[5])),
            ("duration_ms_sum", json_float(round(self.sum, 3))),
            ("duration_ms_min", json_float(round(low, 3))),
            ("duration_ms_max", json_float(round(self.max, 3))),
        ]
        for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
            value = _quantile(BUCKETS_MS, self.buckets, low, self.max, fraction)
            fields.append((f"duration_ms_{name}", json_float(round(value, 3))))
        return "{" + ", ".join(f'"{k}": {v}' for k, v in fields) + "}"


class RequestStats(RecordExporter):
    """Counts and latencies per route and status class, since the process started."""

    name = "expvar"
    in_memory = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, _Route] = {}
        self._total = _Route()

    def export(self, records: Sequence[RequestRecord]) -> None:
        total = self._total
        with self._lock:
            for record in records:
                if record.interface == "job":
                    continue
                name = route_or_path(record)
                route = self._routes.get(name)
                if route is None:
                    if len(self._routes) >= MAX_ROUTES:
                        name = OTHER
                        route = self._routes.get(OTHER)
                    if route is None:
                        route = self._routes[name] = _Route()
                # Worked out once for the route and the total.
                milliseconds = record.duration_ns / 1e6
                status_class = record.status // 100
                if not 1 <= status_class <= 5:
                    status_class = 0
                error = record.error_type is not None
                # The first bucket whose bound is ≥ the duration; past the last, the overflow.
                bucket = bisect_left(BUCKETS_MS, milliseconds)
                route.add(milliseconds, status_class, error, bucket)
                total.add(milliseconds, status_class, error, bucket)

    def render(self) -> str:
        with self._lock:
            routes = sorted(self._routes.items())
            total = self._total.render()
            by_route = ", ".join(f"{go_quote(name)}: {route.render()}" for name, route in routes)
        return '{"by_route": {' + by_route + '}, "total": ' + total + "}"


# expvarmon (and tools that copy its syntax) address a value as a dot-separated path, in a
# comma-separated list, with an optional `kind:` prefix: keys of the `otel` section hold none
# of those three characters.
_UNADDRESSABLE = str.maketrans({".": "_", ",": "_", ":": "_"})


def _addressable(text: object) -> str:
    return str(text).translate(_UNADDRESSABLE)


def _attributes_key(attributes: Any) -> str:
    if not attributes:
        return ""
    return ";".join(
        f"{_addressable(key)}={_addressable(value)}" for key, value in sorted(attributes.items())
    )


class ExpvarMetricReader(MetricReader):
    """A pull reader: the SDK's metrics, collected when `/debug/vars` is read.

    Counters and gauges render as numbers, histograms as count/sum/min/max and p50/p90/p99
    estimated from their buckets; one entry per attribute set. Keys can be addressed by
    expvarmon's variable syntax: `http.server.request.duration` is
    ``http_server_request_duration``, an attribute set ``k_1=v;k_2=v_1`` (``.``, ``,`` and
    ``:`` become ``_``).
    """

    def __init__(self, max_age: float = 1.0) -> None:
        # Cumulative temporality (the default): totals since start, as expvar counters are.
        super().__init__()
        self._latest: MetricsData | None = None
        self._lock = threading.Lock()
        # The SDK's collect() of a hundred metrics costs ~0.6 ms here: a scrape loop hitting
        # /debug/vars back to back reuses the rendering for up to `max_age` seconds.
        self._max_age = max_age
        self._rendered: tuple[float, str] | None = None

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._latest = metrics_data

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass

    def render(self) -> str:
        with self._lock:
            now = time.monotonic()
            if self._rendered is not None and now - self._rendered[0] < self._max_age:
                return self._rendered[1]
            try:
                self.collect()
            except Exception:  # noqa: BLE001 - not attached to a provider, or shut down
                return "{}"
            text = self._render_data(self._latest)
            self._rendered = (now, text)
            return text

    def _render_data(self, data: MetricsData | None) -> str:
        metrics: dict[str, str] = {}
        if data is not None:
            for resource_metrics in data.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        metrics[_addressable(metric.name)] = self._render_metric(metric.data)
        return "{" + ", ".join(f"{go_quote(k)}: {v}" for k, v in sorted(metrics.items())) + "}"

    def _render_metric(self, data: Any) -> str:
        points: dict[str, str] = {}
        if isinstance(data, (Sum, Gauge)):
            for point in data.data_points:
                assert isinstance(point, NumberDataPoint)
                value = point.value
                points[_attributes_key(point.attributes)] = (
                    str(value) if isinstance(value, int) else json_float(value)
                )
        elif isinstance(data, Histogram):
            for histogram_point in data.data_points:
                assert isinstance(histogram_point, HistogramDataPoint)
                points[_attributes_key(histogram_point.attributes)] = self._histogram(
                    histogram_point
                )
        else:
            return json_value(None)
        if list(points) == [""]:
            return points[""]
        return "{" + ", ".join(f"{go_quote(k)}: {v}" for k, v in sorted(points.items())) + "}"

    @staticmethod
    def _histogram(point: HistogramDataPoint) -> str:
        low = point.min if point.count else 0.0
        high = point.max if point.count else 0.0
        fields = [
            ("count", str(point.count)),
            ("sum", json_float(point.sum)),
            ("min", json_float(low)),
            ("max", json_float(high)),
        ]
        for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
            value = _quantile(point.explicit_bounds, point.bucket_counts, low, high, fraction)
            fields.append((name, json_float(value)))
        return "{" + ", ".join(f'"{k}": {v}' for k, v in fields) + "}"


class ScoreboardWriter(RecordExporter):
    """Writes this worker's counters into its scoreboard slot after every batch."""

    name = "scoreboard"
    in_memory = True

    def __init__(self) -> None:
        self._pid = 0
        self._started = 0
        self._counters = [0] * len(COUNTERS)

    def export(self, records: Sequence[RequestRecord]) -> None:
        claim = current()
        if claim is None:
            return
        board, slot = claim
        pid = os.getpid()
        if pid != self._pid:
            # A new worker (or a preloaded app's bridge after fork): count from zero.
            self._pid, self._started = pid, time.time_ns()
            self._counters = [0] * len(COUNTERS)
        counters = self._counters
        for record in records:
            if record.interface == "job":
                continue
            counters[0] += 1
            if record.error_type is not None:
                counters[1] += 1
            status_class = record.status // 100
            if 1 <= status_class <= 5:
                counters[1 + status_class] += 1
            counters[7] += record.duration_ns
        board.write(slot, pid, self._started, counters)
