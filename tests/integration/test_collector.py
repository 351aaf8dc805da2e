"""Against a real OpenTelemetry Collector (tests/integration/collector.py), as users run one:
what the views saw arrives complete; a Collector that is down, hung or slow never holds a
shutdown past its bound, and what it cost is said once."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.collector import collector
from tests.integration.servers import free_port, serve, uvicorn, wait_for
from tests.integration.test_faults import ab, udp_collector

# The process exits within this of SIGTERM (docs/providers.md).
BOUND_S = 5.0


def environment(
    endpoint: str, pinba_port: int, signals: tuple[str, ...], events: Path
) -> dict[str, str]:
    env = {
        "OTEL_BRIDGE_EXPORTERS": "expvar,pinba,wide_events",
        "OTEL_EXPORTER_PINBA_ENDPOINT": f"127.0.0.1:{pinba_port}",
        "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{events}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_SERVICE_NAME": "shop",
        # Nothing leaves before the shutdown (a minute between batches): everything is still
        # to send when the Collector is in trouble.
        "OTEL_BSP_SCHEDULE_DELAY": "60000",
        "OTEL_BLRP_SCHEDULE_DELAY": "60000",
        "OTEL_METRIC_EXPORT_INTERVAL": "60000",
    }
    if "traces" in signals:
        env["OTEL_TRACES_EXPORTER"] = "otlp"
    if "metrics" in signals:
        env["OTEL_METRICS_EXPORTER"] = "otlp"
    if "logs" in signals:
        env["OTEL_EXPORTER_WIDE_EVENTS_SINK"] = "otlp"
    return env


def test_spans_metrics_and_wide_events_reach_the_collector_as_the_views_saw_them(
    tmp_path: Path,
) -> None:
    requests = 300
    with collector(tmp_path) as otelcol, udp_collector() as (pinba, packets):
        port = free_port()
        signals = ("traces", "metrics", "logs")
        env = environment(otelcol.endpoint, pinba.getsockname()[1], signals, tmp_path / "e")
        with serve(uvicorn("tests.integration.fault_app:app", port), port, env) as process:
            assert ab(port, requests, 8)["complete"] == requests
            assert wait_for(lambda: packets[0] >= requests)
            document = httpx.get(f"http://127.0.0.1:{port}/debug/vars", timeout=10).json()
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)

        def written() -> bool:
            # The Collector writes its files every 10 ms after it answers.
            points = otelcol.metric_points("http.server.request.duration")
            return (
                len([s for s in otelcol.spans() if s["kind"] == 2]) >= requests
                and len(otelcol.log_records()) >= requests
                and max((int(point["count"]) for point in points), default=0) >= requests
            )

        assert wait_for(written, 10)
        expvar_total = document["requests"]["total"]["count"]
        server = [s for s in otelcol.spans() if s["kind"] == 2]  # SPAN_KIND_SERVER
        timers = [s for s in otelcol.spans() if s["kind"] == 1]  # SPAN_KIND_INTERNAL
        logs = otelcol.log_records()
        durations = otelcol.metric_points("http.server.request.duration")
    assert expvar_total == packets[0] == requests
    assert len(server) == len(timers) == len(logs) == requests
    assert {s["name"] for s in server} == {"GET /items/{n}"}
    # One wide event per server span, the same trace.
    assert sorted(r["traceId"] for r in logs) == sorted(s["traceId"] for s in server)
    assert {r.get("eventName") for r in logs} == {"http.request"}
    # Cumulative: the last point counts every request.
    assert max(int(point["count"]) for point in durations) == requests


CASES = [
    ("down", ("traces",)),
    ("down", ("metrics",)),
    ("down", ("logs",)),
    ("down", ("traces", "metrics", "logs")),
    ("hung", ("traces",)),
    ("hung", ("metrics",)),
    ("hung", ("logs",)),
    ("hung", ("traces", "metrics", "logs")),
    ("slow", ("traces", "metrics", "logs")),
]


@pytest.mark.parametrize(("trouble", "signals"), CASES)
def test_a_collector_in_trouble_never_holds_a_shutdown_past_its_bound(
    trouble: str, signals: tuple[str, ...], tmp_path: Path
) -> None:
    requests = 2_000 if len(signals) > 1 else 200
    with collector(tmp_path) as otelcol, udp_collector() as (pinba, _):
        port = free_port()
        env = environment(otelcol.endpoint, pinba.getsockname()[1], signals, tmp_path / "e")
        with serve(uvicorn("tests.integration.fault_app:app", port), port, env) as process:
            assert ab(port, requests, 16)["complete"] == requests
            if trouble == "down":
                otelcol.stop()
            else:
                otelcol.freeze()
            if trouble == "slow":  # answers again, 1.5 s into the shutdown
                threading.Timer(1.5, otelcol.thaw).start()
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
            took = time.monotonic() - started
        if trouble == "hung":
            otelcol.thaw()
        if trouble == "slow":  # the Collector writes its files every 10 ms after it answers
            wait_for(lambda: len([s for s in otelcol.spans() if s["kind"] == 2]) >= requests, 10)
        spans = otelcol.spans()
    assert took < BOUND_S, f"exit {took:.2f} s after SIGTERM"
    said = [line for line in stderr.splitlines() if line.startswith("otel_bridge: ")]
    if trouble == "slow":
        # Late but within the bound: everything arrives, nothing is given up.
        assert said == []
        assert len([s for s in spans if s["kind"] == 2]) == requests
        return
    # Each loss is said, once (further ones of a kind are summarised a minute later)...
    kinds = [line.split(" failed")[0] for line in said]
    assert len(kinds) == len(set(kinds)), said
    # ...and every signal that had something to send says what it lost.
    for name in signals:
        assert any(any(m in kind for m in MARKERS[name]) for kind in kinds), (name, said)


MARKERS = {
    "traces": ("otel.traces.otlp", "TracerProvider"),
    "metrics": ("otel.metrics.otlp", "MeterProvider"),
    "logs": ("otel.logs.otlp", "LoggerProvider"),
}


FLUSH = """
import asyncio, json, sys, httpx, otel_bridge
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

endpoint = sys.argv[1]
tracer_provider = TracerProvider()
# Nothing leaves on its own during the test: a minute between batches, an hour between reads.
tracer_provider.add_span_processor(BatchSpanProcessor(
    OTLPSpanExporter(endpoint=endpoint + "/v1/traces"), schedule_delay_millis=60_000))
meter_provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(
    OTLPMetricExporter(endpoint=endpoint + "/v1/metrics"), export_interval_millis=3_600_000)])

async def app(scope, receive, send):
    with otel_bridge.timer(group="db", op="select"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

wrapped = otel_bridge.instrument(
    app, tracer_provider=tracer_provider, meter_provider=meter_provider)

async def main():
    transport = httpx.ASGITransport(wrapped)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as c:
        for _ in range(3):
            await c.get("/items")
asyncio.run(main())
print(json.dumps([tracer_provider.force_flush(10_000), meter_provider.force_flush(10_000)]))
sys.stdout.flush()
sys.stdin.readline()  # the test reads the Collector's files while this process still runs
"""


def test_the_providers_flush_delivers_to_a_real_collector(tmp_path: Path) -> None:
    # OpenTelemetry's flush contract, end to end: the user's own providers, OTLP exporters
    # that send nothing on their own, and only the providers' force_flush().
    import json
    import os
    import subprocess
    import sys

    with collector(tmp_path) as otelcol:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env["OTEL_BRIDGE_EXPORTERS"] = "none"
        process = subprocess.Popen(
            [sys.executable, "-c", FLUSH, otelcol.endpoint],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert process.stdout is not None
            flushed = json.loads(process.stdout.readline())
            # What the flush delivered, before the process exits (exit flushes again).
            wait_for(
                lambda: (
                    len(otelcol.spans()) >= 6
                    and otelcol.metric_points("http.server.request.duration")
                ),
                5,
            )
            spans = sorted((s["name"], s["kind"]) for s in otelcol.spans())
            durations = otelcol.metric_points("http.server.request.duration")
        finally:
            process.communicate("\n", timeout=60)
    assert flushed == [True, True]
    assert spans == [("GET", 2)] * 3 + [("db select", 1)] * 3
    assert [int(point["count"]) for point in durations] == [3]
