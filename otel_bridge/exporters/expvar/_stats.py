"""Request statistics from RequestRecords, and OTel metrics through a pull reader.

Both render as JSON objects for `/debug/vars`. Bounded: at most `MAX_ROUTES` routes (the
rest are counted under `<other>`); histograms are fixed buckets, so memory does not grow with
traffic.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
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

from otel_bridge._routeboard import BUCKETS_MS, Figures, add_route, bucket_of, mirror
from otel_bridge._scoreboard import COUNTERS, current
from otel_bridge.exporters.expvar._format import go_quote, json_float, json_value
from otel_bridge.record import RecordExporter, RequestRecord, route_label

__all__ = ["ExpvarMetricReader", "RequestStats", "ScoreboardWriter"]


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


def _render_figures(figures: Figures) -> str:
    low = 0.0 if figures.count == 0 else figures.min
    classes = figures.classes
    fields: list[tuple[str, str]] = [
        ("count", str(figures.count)),
        ("errors", str(figures.errors)),
        ("1xx", str(classes[1])),
        ("2xx", str(classes[2])),
        ("3xx", str(classes[3])),
        ("4xx", str(classes[4])),
        ("5xx", str(classes[5])),
        ("duration_ms_sum", json_float(round(figures.sum, 3))),
        ("duration_ms_min", json_float(round(low, 3))),
        ("duration_ms_max", json_float(round(figures.max, 3))),
    ]
    for name, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        value = _quantile(BUCKETS_MS, figures.buckets, low, figures.max, fraction)
        fields.append((f"duration_ms_{name}", json_float(round(value, 3))))
    return "{" + ", ".join(f'"{k}": {v}' for k, v in fields) + "}"


def render_requests(total: Figures, routes: Mapping[str, Figures], scope: str | None) -> str:
    """The `requests` section: per route (sorted), the total, and (multi-process) its scope."""
    by_route = ", ".join(
        f"{go_quote(name)}: {_render_figures(figures)}" for name, figures in sorted(routes.items())
    )
    text = '{"by_route": {' + by_route + '}, "total": ' + _render_figures(total)
    if scope is not None:
        text += ', "scope": ' + go_quote(scope)
    return text + "}"


class RequestStats(RecordExporter):
    """Counts and latencies per route and status class, since the process started.

    Under a multi-process server (a scoreboard claim) the counting is this worker's
    `RouteMirror`, which also writes them to the worker's table in the shared segment; the
    server's figures are every table merged (`render_server()`).
    """

    name = "expvar"
    in_memory = True

    def __init__(self, unrouted_by_path: bool = False) -> None:
        self.unrouted_by_path = unrouted_by_path
        self._lock = threading.Lock()
        self._routes: dict[str, Figures] = {}
        self._total = Figures()

    def export(self, records: Sequence[RequestRecord]) -> None:
        claim = current()
        if claim is not None:
            shared = mirror()
            with shared.lock:
                self._count(records, shared.figures_for, shared.total, self.unrouted_by_path)
                shared.publish(claim[0].buffer, claim[0].table(claim[1]))
            return
        with self._lock:
            self._count(records, self._figures_for, self._total, self.unrouted_by_path)

    def _figures_for(self, name: str) -> Figures:
        route = self._routes.get(name)
        return route if route is not None else add_route(self._routes, name)[1]

    @staticmethod
    def _count(
        records: Sequence[RequestRecord],
        figures_for: Callable[[str], Figures],
        total: Figures,
        by_path: bool,
    ) -> None:
        for record in records:
            if record.interface == "job":
                continue
            route = figures_for(route_label(record, by_path))
            # Worked out once for the route and the total.
            milliseconds = record.duration_ns / 1e6
            status_class = record.status // 100
            if not 1 <= status_class <= 5:
                status_class = 0
            error = record.error_type is not None
            bucket = bucket_of(milliseconds)
            route.add(milliseconds, status_class, error, bucket)
            if record.interface != "websocket":
                # A connection's length is no request latency: under its route only.
                total.add(milliseconds, status_class, error, bucket)

    def render(self) -> str:
        """This process's figures (this worker's, under a multi-process server)."""
        if current() is not None:
            shared = mirror()
            with shared.lock:
                return render_requests(shared.total, shared.routes, "worker")
        with self._lock:
            return render_requests(self._total, self._routes, None)

    def render_server(self) -> str:
        """The server's figures, every worker's table merged (the same whichever worker
        renders them); this process's alone without a scoreboard."""
        claim = current()
        if claim is None:
            return self.render()
        total, routes = claim[0].requests()
        return render_requests(total, routes, "server")


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
