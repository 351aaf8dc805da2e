"""Hello-world apps and the instrumentation configurations the benchmarks compare.

Configurations (all with the same no-op exporters, so only the instrumentation's own cost and
the SDK's are measured):
- ``bare``: the app alone.
- ``contrib``: opentelemetry-instrumentation-asgi/-wsgi with the SDK, a BatchSpanProcessor and
  a MeterProvider with a periodic reader, default settings (what users run today).
- ``contrib_tuned``: the same with stable HTTP semconv and, for ASGI, no send/receive spans
  (the cheapest the contrib middleware gets, and the same span attributes as ours).
- ``bridge``: otel_bridge with the same providers and exporters.
- ``bridge_views``: otel_bridge with no span exporter (views only: traces not exported).
- ``bridge_wide``: ``bridge`` plus the wide-events view writing JSON Lines to /dev/null.
- ``bridge_all``: ``bridge`` with all four views on: expvar, Pinba (to a collector process on
  127.0.0.1 that reads every datagram), wide events (JSON Lines to /dev/null) and Cronitor
  (the hello route declared a healthcheck; no API key, so nothing is synced).
- ``floor`` / ``floor_all``: the least any instrumentation on the SDK must do to deliver what
  ``bridge`` / ``bridge_all`` deliver, without logic of its own (`benchmarks/floor.py`): the
  yardstick for the targets otel_bridge misses.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

CONFIGS = (
    "bare",
    "contrib",
    "contrib_tuned",
    "bridge",
    "bridge_views",
    "bridge_wide",
    "bridge_all",
    "floor",
    "floor_all",
)
ALL_VIEWS: tuple[str, ...] = ("expvar", "pinba", "wide_events", "cronitor")
# A Pinba collector in a process of its own (its CPU is not the benchmark's, and a thread of
# the measured process would wait for the GIL while the exporter sends, and overflow) that
# reads, counts and drops every datagram. It drains its socket every 10 ms rather than
# waiting in recv(): a waiting reader on this 2-core machine is woken by every datagram, and
# the wake-up (and the preemption it brings) lands on the sending process, a cost a collector
# on another host (the real set-up) does not add. The 4 MiB buffer holds far more than 10 ms
# of datagrams. When its stdin closes (the parent closed it, or the parent is gone: a server
# killed by the harness runs no atexit hooks), it drains once more, prints the count and
# leaves.
_COLLECTOR = """
import select, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:  # root may go past net.core.rmem_max
    s.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE (Linux)
except OSError:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", 0))
s.setblocking(False)
print(s.getsockname()[1], flush=True)
count = 0
def drain():
    global count
    try:
        while True:
            s.recv(65536)
            count += 1
    except BlockingIOError:
        pass
while True:
    drain()
    if select.select([sys.stdin], [], [], 0.01)[0]:  # readable only at end of file
        drain()
        print(count, flush=True)
        break
"""


class PinbaCollector:
    """A draining, counting Pinba collector process on 127.0.0.1 (see `_COLLECTOR`)."""

    def __init__(self) -> None:
        import subprocess
        import sys

        self._process = subprocess.Popen(
            [sys.executable, "-c", _COLLECTOR],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # not the parent's: a harness reading it would wait
            text=True,
        )
        assert self._process.stdout is not None
        self.port = int(self._process.stdout.readline())

    def received(self) -> int:
        """Stop the collector; the number of datagrams it read."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.close()
        count = int(self._process.stdout.readline())
        self._process.wait(10)
        return count

    def kill(self) -> None:
        self._process.kill()
        self._process.wait()


def pinba_collector() -> int:
    """Start a collector for the rest of this process; returns its port."""
    import atexit

    collector = PinbaCollector()
    atexit.register(collector.kill)
    return collector.port


APPS = ("asgi", "starlette", "wsgi")


class NullSpanExporter(SpanExporter):
    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


class NullMetricExporter(MetricExporter):
    def __init__(self) -> None:
        super().__init__()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


async def raw_asgi(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello"})


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from otel_bridge import healthcheck

    # A route that declares a Cronitor healthcheck, as `bridge_all` has one.
    @healthcheck(schedule="every 5 minutes")
    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello")

    async def decoy(request: Any) -> PlainTextResponse:
        return PlainTextResponse("decoy")

    # Eight parameterised decoys before the route hit, as a real routing table has.
    routes = [Route(f"/decoy{i}/{{id:int}}", decoy) for i in range(8)]
    return Starlette(routes=[*routes, Route("/hello", hello)])


def wsgi_hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def providers(export_spans: bool = True) -> tuple[TracerProvider, MeterProvider, NullSpanExporter]:
    exporter = NullSpanExporter()
    tracer_provider = TracerProvider()
    if export_spans:
        # A queue large enough that no configuration drops spans: equal work for all.
        processor = BatchSpanProcessor(exporter, max_queue_size=1_000_000)
        tracer_provider.add_span_processor(processor)
    reader = PeriodicExportingMetricReader(NullMetricExporter(), export_interval_millis=60_000)
    return tracer_provider, MeterProvider(metric_readers=[reader]), exporter


def build(app_name: str, config: str) -> tuple[Any, Any, Any]:
    """Return (app, flush, exported) for one cell.

    `flush()` drains background work; `exported()` counts the spans the exporter received, so
    a run can show every configuration did the same work (no span dropped by a full queue).
    """
    if config == "contrib_tuned":
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http"
    base: Any = {"asgi": raw_asgi, "starlette": starlette_app(), "wsgi": wsgi_hello}[app_name]
    if config == "bare":
        return base, lambda: None, lambda: 0
    tracer_provider, meter_provider, exporter = providers(export_spans=config != "bridge_views")
    views: tuple[str, ...] = {"bridge_wide": ("wide_events",), "bridge_all": ALL_VIEWS}.get(
        config, ()
    )

    def exported() -> int:
        return exporter.exported

    def flush() -> None:
        tracer_provider.force_flush()

    if config.startswith("contrib"):
        if app_name == "wsgi":
            from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as WSGI

            return (
                WSGI(base, tracer_provider=tracer_provider, meter_provider=meter_provider),
                flush,
                exported,
            )
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        exclude: Any = ["send", "receive"] if config == "contrib_tuned" else None
        return (
            OpenTelemetryMiddleware(
                base,
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                exclude_spans=exclude,
            ),
            flush,
            exported,
        )
    if config.startswith("floor"):
        from benchmarks import floor

        port = pinba_collector() if config == "floor_all" else None
        measure = floor.Floor(tracer_provider, meter_provider, port)
        wrap = floor.wsgi if app_name == "wsgi" else floor.asgi
        return wrap(base, measure), flush, exported
    import otel_bridge

    # BENCH_WIDE_EVENTS_SINK: another sink (benchmarks/stuck_view.py blocks one on purpose).
    sink = os.environ.get("BENCH_WIDE_EVENTS_SINK", "file:/dev/null")
    options: dict[str, Any] = {"wide_events_sink": sink}
    if "pinba" in views:
        options["pinba_endpoint"] = f"127.0.0.1:{pinba_collector()}"
    kwargs: dict[str, Any] = {
        "settings": otel_bridge.Settings(exporters=views).replace(**options),
        "tracer_provider": tracer_provider,
        "meter_provider": meter_provider,
    }
    if app_name == "wsgi":
        wrapped: Any = otel_bridge.instrument_wsgi(base, **kwargs)
    else:
        wrapped = otel_bridge.instrument(base, **kwargs)

    def flush_bridge() -> None:
        wrapped.bridge.force_flush()
        tracer_provider.force_flush()

    return wrapped, flush_bridge, exported
