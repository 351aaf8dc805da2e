"""Our span and metric attributes against the contrib OTel instrumentation's, same requests.

The contrib middlewares run with OTEL_SEMCONV_STABILITY_OPT_IN=http (stable HTTP semantic
conventions) in a fresh interpreter, since they read that variable once per process. Every
attribute they emit must appear in ours with the same value, except the documented deviations:
- `server.address`: contrib ASGI puts "host:port" there; the convention (and we) put the host
  alone, with the port in `server.port`.
- an app exception before any response: we report `http.response.status_code=500` (what the
  server sends) and `error.type=<exception class>` on the span and on every metric; contrib
  ASGI puts neither on its metrics, contrib WSGI only `error.type`.
- contrib WSGI emits no `http.server.response.body.size`; we measure it for WSGI too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import asyncio, json, sys, httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as WSGIMiddleware
import otel_bridge

# The body-size metrics are opt-in with us (as in the semantic conventions).
SETTINGS = otel_bridge.Settings(exporters=()).replace(body_size_metrics=True)

REQUESTS = [
    ("GET", "/users/42?q=1", {"user-agent": "probe/1"}),
    ("POST", "/fail", {}),
    ("HEAD", "/users/1", {}),
    ("DELETE", "/missing", {}),
]

async def asgi_app(scope, receive, send):
    if scope["path"] == "/fail":
        raise RuntimeError("fail")
    status = 404 if scope["path"] == "/missing" else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})

def wsgi_app(environ, start_response):
    if environ["PATH_INFO"] == "/fail":
        raise RuntimeError("fail")
    status = "404 Not Found" if environ["PATH_INFO"] == "/missing" else "200 OK"
    start_response(status, [("Content-Length", "2")])
    return [b"ok"]

def providers():
    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    return tp, MeterProvider(metric_readers=[reader]), spans, reader

def collect(spans, reader, flush):
    flush()
    out = {"spans": [], "metrics": {}}
    for span in spans.get_finished_spans():
        out["spans"].append({"path": span.attributes.get("url.path", ""),
                             "method": span.attributes["http.request.method"],
                             "attributes": dict(span.attributes),
                             "error": span.status.status_code.name})
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out["metrics"][metric.name] = sorted(
                    (dict(p.attributes) for p in metric.data.data_points), key=json.dumps)
    return out

def drive_asgi(app):
    async def run():
        transport = httpx.ASGITransport(app, raise_app_exceptions=False,
                                        client=("10.1.2.3", 5555))
        async with httpx.AsyncClient(transport=transport,
                                     base_url="http://example.com:8080") as c:
            for method, url, headers in REQUESTS:
                await c.request(method, url, headers=headers)
    asyncio.run(run())

def drive_wsgi(app):
    transport = httpx.WSGITransport(app, remote_addr="10.1.2.3")
    with httpx.Client(transport=transport, base_url="http://example.com:8080") as c:
        for method, url, headers in REQUESTS:
            try:
                c.request(method, url, headers=headers)
            except RuntimeError:
                pass

result = {}
tp, mp, spans, reader = providers()
drive_asgi(OpenTelemetryMiddleware(asgi_app, tracer_provider=tp, meter_provider=mp,
                                   exclude_spans=["send", "receive"]))
result["contrib_asgi"] = collect(spans, reader, lambda: None)
tp, mp, spans, reader = providers()
ours = otel_bridge.instrument(asgi_app, tracer_provider=tp, meter_provider=mp,
                              settings=SETTINGS)
drive_asgi(ours)
result["ours_asgi"] = collect(spans, reader, lambda: ours.bridge.force_flush(5000))
tp, mp, spans, reader = providers()
drive_wsgi(WSGIMiddleware(wsgi_app, tracer_provider=tp, meter_provider=mp))
result["contrib_wsgi"] = collect(spans, reader, lambda: None)
tp, mp, spans, reader = providers()
ours = otel_bridge.instrument_wsgi(wsgi_app, tracer_provider=tp, meter_provider=mp,
                                   settings=SETTINGS)
drive_wsgi(ours)
result["ours_wsgi"] = collect(spans, reader, lambda: ours.bridge.force_flush(5000))
print(json.dumps(result))
"""

DEVIATIONS = {"server.address"}


@pytest.fixture(scope="module")
def dump() -> dict[str, dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, dict[str, object]] = json.loads(result.stdout.splitlines()[-1])
    return data


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_span_attributes_match_contrib(dump: dict[str, object], interface: str) -> None:
    contrib = dump[f"contrib_{interface}"]["spans"]  # type: ignore[index]
    ours = dump[f"ours_{interface}"]["spans"]  # type: ignore[index]
    assert len(contrib) == len(ours) == 4
    by_method = {span["method"]: span for span in ours}
    for theirs in contrib:
        mine = by_method[theirs["method"]]
        for key, value in theirs["attributes"].items():
            if key in DEVIATIONS:
                continue
            assert mine["attributes"].get(key) == value, (interface, theirs["method"], key)
        assert mine["error"] == theirs["error"], theirs["method"]
    assert {span["attributes"]["server.address"] for span in ours} == {"example.com"}
    assert {span["attributes"]["server.port"] for span in ours} == {8080}


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
@pytest.mark.parametrize(
    "metric",
    [
        "http.server.request.duration",
        "http.server.active_requests",
        "http.server.response.body.size",
    ],
)
def test_metric_attributes_match_contrib(
    dump: dict[str, object], interface: str, metric: str
) -> None:
    contrib = dump[f"contrib_{interface}"]["metrics"].get(metric)  # type: ignore[index]
    ours = dump[f"ours_{interface}"]["metrics"][metric]  # type: ignore[index]
    assert ours, "we emit the metric"
    if contrib is None:
        assert (interface, metric) == ("wsgi", "http.server.response.body.size")
        return
    failed = {
        "http.request.method": "POST",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
    }
    if metric != "http.server.active_requests":
        assert {**failed, "http.response.status_code": 500, "error.type": "RuntimeError"} in ours
        ours = [p for p in ours if p.get("http.request.method") != "POST"]
        contrib = [p for p in contrib if p.get("http.request.method") != "POST"]
    assert ours == contrib
