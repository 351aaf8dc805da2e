"""OpenTelemetry's flush contract, as users test their instrumentation: they set up the SDK
with its in-memory exporter and reader, send requests, and call the provider's
`force_flush()` or `shutdown()` — nothing of ours. Every request that finished before the
call must then be there: its server span, its timers' spans and its metrics, in every
processor (Simple, Batch, the user's own) and every reader (pull and push).

Each case runs in a fresh interpreter: OTel's globals can be set only once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = """
import asyncio, json, sys, httpx, otel_bridge
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader, MetricExporter, MetricExportResult, PeriodicExportingMetricReader)
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

WHEN, INTERFACE, CALL = sys.argv[1:4]

class Mine(SpanProcessor):
    # A user's own processor: keeps what ends, and flushes nothing.
    def __init__(self):
        self.ended = []
    def on_end(self, span):
        self.ended.append(span)
    def force_flush(self, timeout_millis=30_000):
        return True  # (older SDKs' base class returns None: a failed flush)

class Pushed(MetricExporter):
    # A push exporter keeping what it is handed (the SDK ships none in memory).
    def __init__(self):
        super().__init__()
        self.batches = []
    def export(self, metrics_data, timeout_millis=10_000, **kwargs):
        self.batches.append(metrics_data)
        return MetricExportResult.SUCCESS
    def force_flush(self, timeout_millis=10_000):
        return True
    def shutdown(self, timeout_millis=30_000, **kwargs):
        pass

simple, batch, mine = InMemorySpanExporter(), InMemorySpanExporter(), Mine()
pull = InMemoryMetricReader()
push = Pushed()

def providers():
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(simple))
    # Exports only when flushed: a minute between batches, a batch far larger than the test.
    tracer_provider.add_span_processor(
        BatchSpanProcessor(batch, schedule_delay_millis=60_000, max_export_batch_size=512))
    tracer_provider.add_span_processor(mine)
    meter_provider = MeterProvider(metric_readers=[
        pull, PeriodicExportingMetricReader(push, export_interval_millis=3_600_000)])
    return tracer_provider, meter_provider

async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    with otel_bridge.timer(group="db", op="select"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

def wsgi_app(environ, start_response):
    with otel_bridge.timer(group="db", op="select"):
        pass
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]

app = asgi_app if INTERFACE == "asgi" else wsgi_app
instrument = otel_bridge.instrument if INTERFACE == "asgi" else otel_bridge.instrument_wsgi
if WHEN == "before":
    tracer_provider, meter_provider = providers()
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    wrapped = instrument(app)
elif WHEN == "passed":
    tracer_provider, meter_provider = providers()
    wrapped = instrument(
        app, tracer_provider=tracer_provider, meter_provider=meter_provider)
else:  # the app wraps first, then sets OpenTelemetry up (before serving)
    wrapped = instrument(app)
    tracer_provider, meter_provider = providers()
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)

if INTERFACE == "asgi":
    async def send_requests():
        transport = httpx.ASGITransport(wrapped)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as c:
            for _ in range(3):
                assert (await c.get("/items")).status_code == 200
    asyncio.run(send_requests())
else:
    with httpx.Client(transport=httpx.WSGITransport(wrapped), base_url="http://shop.test") as c:
        for _ in range(3):
            assert c.get("/items").status_code == 200

if CALL == "force_flush":
    traced = tracer_provider.force_flush(5_000)
    metered = meter_provider.force_flush(5_000)
else:
    traced = tracer_provider.shutdown() is None
    metered = meter_provider.shutdown() is None

def spans(items):
    return sorted((span.name, span.kind.name) for span in items)

def histogram(data, name):
    for resource in (data.resource_metrics if data else ()):
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    return sum(point.count for point in metric.data.data_points)
    return 0

pulled = pull.get_metrics_data() if CALL == "force_flush" else None
pushed = push.batches
print(json.dumps({
    "flushed": [traced, metered],
    "simple": spans(simple.get_finished_spans()),
    "batch": spans(batch.get_finished_spans()),
    "mine": spans(mine.ended),
    "pull": histogram(pulled, "http.server.request.duration") if pulled is not None else 3,
    "push": max((histogram(d, "http.server.request.duration") for d in pushed), default=0),
}))
"""

EXPECTED_SPANS = sorted([["GET", "SERVER"]] * 3 + [["db select", "INTERNAL"]] * 3)


def run(when: str, interface: str, call: str) -> dict[str, object]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment["OTEL_BRIDGE_EXPORTERS"] = "expvar"
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), when, interface, call],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    got: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return got


@pytest.mark.parametrize("call", ["force_flush", "shutdown"])
@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
@pytest.mark.parametrize("when", ["before", "passed", "after"])
def test_the_providers_flush_delivers_every_finished_request(
    when: str, interface: str, call: str
) -> None:
    got = run(when, interface, call)
    assert got == {
        "flushed": [True, True],
        "simple": EXPECTED_SPANS,
        "batch": EXPECTED_SPANS,
        "mine": EXPECTED_SPANS,
        "pull": 3,
        "push": 3,
    }
