"""Memory under sustained load: requests through a Starlette app with every view on
(expvar, Pinba to a real UDP socket read by a collector process, wide events, Cronitor routes
declared), two timers, a tag and a wide-event field each, and OTLP-ready span and metric
pipelines (a BatchSpanProcessor and a periodic reader with exporters that discard). The
resident set after all of them stays within 5 MB of the one after the first 10,000, and the
numbers of live objects and threads do not grow.

`make bench` runs 200,000 requests and reports the numbers in benchmarks/RESULTS.md;
tests/test_memory.py runs 110,000 (~15 s) and asserts the bounds, halfway too."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from typing import Any

import psutil
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import otel_bridge
from benchmarks.apps import NullMetricExporter, NullSpanExporter, PinbaCollector

WARMUP = 10_000


@otel_bridge.healthcheck(schedule="every 5 minutes")
async def item(request: Any) -> PlainTextResponse:
    otel_bridge.tag(shard=str(int(request.path_params["n"]) % 8))
    otel_bridge.wide_event.set(n=request.path_params["n"])
    with otel_bridge.timer(group="db", op="select"), otel_bridge.timer(group="cache", op="get"):
        pass
    return PlainTextResponse("ok")


def scope(n: int) -> dict[str, Any]:
    path = f"/items/{n}"
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": f"q={n}".encode(),
        "headers": [(b"host", b"shop.test"), (b"user-agent", b"soak/1")],
        "client": ("127.0.0.1", 5000 + n % 1000),
        "server": ("127.0.0.1", 80),
    }


def run(total: int) -> dict[str, Any]:
    """Drive `total` requests; the measurements after WARMUP and after all of them."""
    spans = NullSpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(spans, max_queue_size=8192))
    reader = PeriodicExportingMetricReader(NullMetricExporter(), export_interval_millis=1_000)
    meter_provider = MeterProvider(metric_readers=[reader])
    collector = PinbaCollector()
    port = collector.port
    try:
        settings = otel_bridge.Settings(
            exporters=("expvar", "pinba", "wide_events", "cronitor")
        ).replace(
            wide_events_sink="file:/dev/null",
            pinba_endpoint=f"127.0.0.1:{port}",
            cronitor_public_url="https://shop.test",
        )
        app: Any = otel_bridge.instrument(
            Starlette(routes=[Route("/items/{n}", item)]),
            settings=settings,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
        process = psutil.Process()

        async def drive(start: int, stop: int) -> None:
            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                return None

            for n in range(start, stop):
                await app(scope(n), receive, send)

        def settle() -> tuple[int, int, int]:
            assert app.bridge.force_flush(30_000)
            tracer_provider.force_flush()
            gc.collect()
            return process.memory_info().rss, len(gc.get_objects()), threading.active_count()

        # RSS is read twice at each point: under load (the queues as full as the load keeps
        # them: the like-for-like reading), and settled (queues drained, gc.collect()), where
        # the allocator may or may not have handed freed arenas back to the system yet: that
        # reading moves by a few MB from run to run without anything having grown.
        # And halfway: the queues' fill once at its highest raises RSS for good (the allocator
        # keeps the arenas), in one half; a leak grows both halves.
        midway = (WARMUP + total) // 2
        asyncio.run(drive(0, WARMUP))
        live0 = process.memory_info().rss
        rss0, objects0, threads0 = settle()
        started = time.perf_counter()
        asyncio.run(drive(WARMUP, midway))
        live_midway = process.memory_info().rss
        rss_midway = settle()[0]
        asyncio.run(drive(midway, total))
        elapsed = time.perf_counter() - started
        live1 = process.memory_info().rss
        rss1, objects1, threads1 = settle()
        health = app.bridge.health
        app.bridge.shutdown(10_000)
        tracer_provider.shutdown()
        meter_provider.shutdown()
        received = collector.received()
    finally:
        collector.kill()
    return {
        "requests": total,
        "rss_after_warmup_mb": live0 / 2**20,
        "rss_after_all_mb": live1 / 2**20,
        "settled_rss_mb": (rss0 / 2**20, rss1 / 2**20),
        "rss_midway_mb": live_midway / 2**20,
        "settled_rss_midway_mb": rss_midway / 2**20,
        "queue_size": settings.queue_size,
        "objects": (objects0, objects1),
        "threads": (threads0, threads1),
        "us_per_request": elapsed / (total - WARMUP) * 1e6,
        "spans_exported": spans.exported,
        "dropped": dict(health.dropped),
        "packets_sent": health.counts.get("pinba.packets_sent", 0),
        "packets_received": received,
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)))
