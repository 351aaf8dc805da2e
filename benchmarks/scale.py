"""How cost grows with work: per-request cost with 0, 1, 10 and 100 timers (raw ASGI app,
every view on but Cronitor, spans to a discarding BatchSpanProcessor), and rendering
`/debug/vars` with 10, 1,000 and 10,000 user variables.

`python -m benchmarks.scale` prints one JSON line per cell.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import otel_bridge
from benchmarks.apps import NullSpanExporter, PinbaCollector
from benchmarks.inprocess import run_asgi

TIMERS = (0, 1, 10, 100)
VARS = (10, 1_000, 10_000)


def _app(timers: int) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        for index in range(timers):
            with otel_bridge.timer(group="db", op="select", n=str(index % 4)):
                pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def timers_cell(timers: int, n: int) -> dict[str, float]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(
        BatchSpanProcessor(NullSpanExporter(), max_queue_size=1_000_000)
    )
    # A collector that reads (sendto() to a full socket costs ~100x more: the kernel), in a
    # process of its own.
    collector = PinbaCollector()
    try:
        settings = otel_bridge.Settings(exporters=("expvar", "pinba", "wide_events")).replace(
            wide_events_sink="file:/dev/null",
            pinba_endpoint=f"127.0.0.1:{collector.port}",
            max_timers=1_000,
        )
        app: Any = otel_bridge.instrument(
            _app(timers),
            settings=settings,
            tracer_provider=tracer_provider,
            meter_provider=MeterProvider(),
        )

        run_asgi(app, max(50, n // 10))
        app.bridge.force_flush()
        cpu0 = time.process_time()
        run_asgi(app, n)
        app.bridge.force_flush()
        tracer_provider.force_flush()
        cpu = time.process_time() - cpu0
        dropped = sum(app.bridge.health.dropped.values())
        app.bridge.shutdown()
    finally:
        collector.kill()
    if dropped:
        raise SystemExit(f"{timers} timers: {dropped} records dropped")
    return {"timers": timers, "us_per_request": cpu / n * 1e6}


def vars_cell(count: int, rounds: int = 21) -> dict[str, float]:
    """The whole body rendered (cmdline, memstats, the variables…), median of `rounds`."""
    from otel_bridge.exporters.expvar import Float, Int, String
    from otel_bridge.exporters.expvar._vars import Registry
    from otel_bridge.exporters.expvar._view import ExpvarEndpoint

    registry = Registry()
    for index in range(count):
        kind = index % 3
        if kind == 0:
            Float(f"float_{index:05d}", registry=registry).set(index * 1.25)
        elif kind == 1:
            Int(f"int_{index:05d}", registry=registry).set(index * 7)
        else:
            String(f"string_{index:05d}", registry=registry).set(f"value {index}")
    view = ExpvarEndpoint(registry=registry)
    body = view.render()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        body = view.render()
        samples.append(time.perf_counter() - started)
    return {"vars": count, "median_ms": statistics.median(samples) * 1e3, "bytes": len(body)}


def run(n: int = 5_000) -> dict[str, Any]:
    # The rendering first, in a process the timer cells have not filled yet: after them, the
    # garbage collector's full passes over their leftovers landed in some renders (10,000
    # variables: 2.9 ms alone, 6.2 ms in one such run).
    variables = [vars_cell(count) for count in VARS]
    return {
        "timers": [timers_cell(t, n if t < 100 else max(200, n // 10)) for t in TIMERS],
        "vars": variables,
    }


if __name__ == "__main__":
    import sys

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 5_000)))
