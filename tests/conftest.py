from __future__ import annotations

import os
import sys

if os.environ.get("OTEL_BRIDGE_TEST_WITHOUT_C") == "1":
    # As a machine without a C compiler runs it: the C core missing (scripts/test).
    sys.modules["otel_bridge._speedups"] = None  # type: ignore[assignment]

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

import otel_bridge
from otel_bridge.record import RecordExporter, RequestRecord
from otel_bridge.testing import RecordCollector


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Harness:
    """Providers of our own (never the globals), a span exporter, a metric reader, records."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    collector: RecordCollector
    apps: list[Any]

    def asgi(self, app: Any, **kwargs: Any) -> Any:
        wrapped = otel_bridge.instrument(app, **self._kwargs(kwargs))
        self.apps.append(wrapped)
        return wrapped

    def wsgi(self, app: Any, **kwargs: Any) -> Any:
        wrapped = otel_bridge.instrument_wsgi(app, **self._kwargs(kwargs))
        self.apps.append(wrapped)
        return wrapped

    def _kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        # No views unless a test asks: nothing is sent anywhere by default.
        kwargs.setdefault("settings", otel_bridge.Settings(exporters=()))
        kwargs.setdefault("tracer_provider", self.tracer_provider)
        kwargs.setdefault("meter_provider", self.meter_provider)
        kwargs.setdefault("record_exporters", [self.collector])
        return kwargs

    def records(self) -> list[RequestRecord]:
        for app in self.apps:
            assert app.bridge.force_flush(5_000)
        return self.collector.records

    def finished_spans(self) -> list[ReadableSpan]:
        self.records()
        return list(self.spans.get_finished_spans())

    def metric_points(self, name: str) -> list[Any]:
        self.records()
        data = self.metrics.get_metrics_data()
        points: list[Any] = []
        if data is None:
            return points
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points


def make_harness(sampler: Sampler | None = None) -> Harness:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    return Harness(
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
        spans=spans,
        metrics=reader,
        collector=RecordCollector(),
        apps=[],
    )


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = make_harness()
    yield h
    for app in h.apps:
        app.bridge.shutdown()
    h.tracer_provider.shutdown()
    h.meter_provider.shutdown()


class FailingExporter(RecordExporter):
    name = "failing"

    def __init__(self, make_error: Callable[[], Exception] = lambda: RuntimeError("boom")) -> None:
        self.calls = 0
        self._make_error = make_error

    def export(self, records: Any) -> None:
        self.calls += len(records)
        raise self._make_error()


class StartWatcher(SpanProcessor):
    """A processor that acts while spans run: the SDK span must be used when one is there."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started.append(span.name)

    def on_end(self, span: ReadableSpan) -> None:
        pass


@pytest.fixture
def pair() -> Iterator[tuple[Harness, Harness, StartWatcher]]:
    deferred, sdk = make_harness(), make_harness()
    watcher = StartWatcher()
    sdk.tracer_provider.add_span_processor(watcher)
    yield deferred, sdk, watcher
    for h in (deferred, sdk):
        for app in h.apps:
            app.bridge.shutdown()
        h.tracer_provider.shutdown()
