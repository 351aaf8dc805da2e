"""OTLP coexistence: an app wrapped by `instrument()` keeps exporting to its Collector. A
receiver on 127.0.0.1 takes OTLP/HTTP and decodes it with the reference protobuf definitions
(opentelemetry-proto); the trace sampler's ratio holds there, while the local views count
every request."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.test_providers import run

from .servers import free_port, serve, uvicorn

pytestmark = pytest.mark.integration


class Receiver:
    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.lock = threading.Lock()

    def server_spans(self) -> list[Span]:
        with self.lock:
            return [
                span
                for request in self.traces
                for resource in request.resource_spans
                for scope in resource.scope_spans
                for span in scope.spans
                if span.kind == Span.SPAN_KIND_SERVER
            ]

    def duration_count(self) -> int:
        """Requests in the latest cumulative http.server.request.duration points."""
        with self.lock:
            latest = 0
            for request in self.metrics:
                for resource in request.resource_metrics:
                    for scope in resource.scope_metrics:
                        for metric in scope.metrics:
                            if metric.name == "http.server.request.duration":
                                latest = max(
                                    latest,
                                    sum(p.count for p in metric.histogram.data_points),
                                )
            return latest


@contextmanager
def otlp_receiver() -> Iterator[tuple[Receiver, int]]:
    received = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            assert self.headers["content-type"] == "application/x-protobuf"
            with received.lock:
                if self.path == "/v1/traces":
                    received.traces.append(ExportTraceServiceRequest.FromString(body))
                elif self.path == "/v1/metrics":
                    received.metrics.append(ExportMetricsServiceRequest.FromString(body))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_otlp_gets_the_sampled_traces_and_all_metrics_while_views_see_every_request(
    tmp_path: Path,
) -> None:
    events = tmp_path / "events.jsonl"
    requests = 200
    with otlp_receiver() as (received, otlp_port):
        port = free_port()
        env = {
            "OTEL_SERVICE_NAME": "shop",
            "OTEL_BRIDGE_EXPORTERS": "expvar,wide_events",
            "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{events}",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
            "OTEL_TRACES_SAMPLER": "traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_METRIC_EXPORT_INTERVAL": "300",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        app = uvicorn("tests.integration.apps:asgi_app", port)
        base = f"http://127.0.0.1:{port}"
        with serve(app, port, env), httpx.Client(base_url=base, timeout=10) as client:
            for index in range(requests):
                assert client.get(f"/users/{index}").status_code == 200
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                # Records reach the views within 0.1 s, metrics the receiver every 0.3 s.
                document = client.get("/debug/vars").json()
                counted = document["requests"]["total"]["count"]
                if counted >= requests and received.duration_count() >= requests:
                    break
                time.sleep(0.1)
        spans = received.server_spans()
        lines = events.read_text().splitlines()
    # Binomial(200, 0.25): mean 50, sd 6.1; these bounds fail about once in 10^7 runs.
    assert 18 <= len(spans) <= 85, len(spans)
    assert {span.name for span in spans} == {"GET /users/{uid}"}
    attributes = {kv.key: kv.value for kv in spans[0].attributes}
    assert attributes["http.route"].string_value == "/users/{uid}"
    assert attributes["http.response.status_code"].int_value == 200
    resource = {
        kv.key: kv.value.string_value
        for kv in received.traces[0].resource_spans[0].resource.attributes
    }
    assert resource["service.name"] == "shop"
    assert received.duration_count() == requests, "metrics are not sampled"
    assert len(lines) == requests, "the wide events see every request"
    assert document["requests"]["total"]["count"] == requests
    sampled = [json.loads(line) for line in lines if json.loads(line).get("trace_id")]
    exported_ids = {span.trace_id.hex() for span in spans}
    assert exported_ids <= {event["trace_id"] for event in sampled}


def test_a_collector_down_is_logged_once_and_counted_for_every_batch() -> None:
    # OTLP over HTTP to a port nobody listens on: the SDK's exporter logs each retry of each
    # batch; through otel_bridge each of its messages shows once, and every lost batch counts.
    port = free_port()
    result = run(
        """
        import logging
        from opentelemetry import trace
        logging.basicConfig(level=logging.WARNING, format="LOG %(name)s %(message)s")
        wrapped = otel_bridge.instrument(app, exporters="none")
        for _ in range(3):
            drive(wrapped, 2)
            trace.get_tracer_provider().force_flush()
        health = wrapped.bridge.health
        print("DROPPED", json.dumps(dict(health.dropped)))
        """,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_EXPORTER_OTLP_TIMEOUT="1",
    )
    assert result.returncode == 0, result.stderr
    dropped = json.loads(result.stdout.split("DROPPED ", 1)[1])
    # Three batches of two requests, each a server span and its timer's: all counted.
    assert dropped == {"otel.traces.otlp": 12}
    exporter_logs = [
        line for line in result.stderr.splitlines() if line.startswith("LOG opentelemetry.exporter")
    ]
    assert exporter_logs, "the first failure is shown"
    templates = {line.split(" ", 3)[2] + line.split(" ", 3)[3][:20] for line in exporter_logs}
    assert len(exporter_logs) == len(templates), "\n".join(exporter_logs)
