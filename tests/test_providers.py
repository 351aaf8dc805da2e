"""How instrument() finds or creates OpenTelemetry providers.

Each case runs in a fresh interpreter: the OTel globals can be set only once per process, and
the tests never reset them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

COMMON = """
import asyncio, json, httpx, otel_bridge
from otel_bridge.testing import RecordCollector

async def app(scope, receive, send):
    with otel_bridge.timer(group="work"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})

def drive(wrapped, n=1):
    async def run():
        transport = httpx.ASGITransport(wrapped)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            for _ in range(n):
                await c.get("/")
    asyncio.run(run())
    assert wrapped.bridge.force_flush(5000)
"""


def run(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment["OTEL_BRIDGE_EXPORTERS"] = "none"
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", COMMON + textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )


def test_existing_sdk_provider_is_added_to_not_replaced() -> None:
    result = run(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
        exporter = InMemorySpanExporter()
        provider = TracerProvider(sampler=TraceIdRatioBased(0.0))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        early_tracer = trace.get_tracer("instrumented-before-us")
        collector = RecordCollector()
        wrapped = otel_bridge.instrument(app, record_exporters=[collector])
        drive(wrapped, 20)
        print(json.dumps({
            "same_provider": trace.get_tracer_provider() is provider,
            "records": len(collector.records),
            "timers": sum(len(r.timers) for r in collector.records),
            "exported_by_user": len(exporter.get_finished_spans()),
            "early_tracer_records": early_tracer.start_span("x").is_recording() is False,
        }))
        """
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "same_provider": True,
        "records": 20,
        "timers": 20,
        "exported_by_user": 0,  # the user's 0% sampler still decides what is exported
        "early_tracer_records": True,  # outside a request the user's sampler decides alone
    }


def test_without_providers_otel_env_exporters_are_honoured() -> None:
    result = run(
        """
        from opentelemetry import trace, metrics
        wrapped = otel_bridge.instrument(app)
        drive(wrapped)
        trace.get_tracer_provider().force_flush()
        metrics.get_meter_provider().force_flush()
        print("PROVIDER", type(trace.get_tracer_provider()).__name__)
        """,
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="console",
        OTEL_SERVICE_NAME="shop",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test",
    )
    assert result.returncode == 0, result.stderr
    assert "PROVIDER TracerProvider" in result.stdout
    # ConsoleSpanExporter prints each span as JSON; find the server span.
    assert '"name": "GET"' in result.stdout
    assert '"service.name": "shop"' in result.stdout
    assert '"deployment.environment": "test"' in result.stdout
    assert '"http.server.request.duration"' in result.stdout


def test_expvar_shows_the_otel_metrics_of_the_provider_it_creates() -> None:
    result = run(
        """
        wrapped = otel_bridge.instrument(app, exporters="expvar")
        drive(wrapped, 3)
        async def read():
            transport = httpx.ASGITransport(wrapped, client=("127.0.0.1", 1))
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
                return (await c.get("/debug/vars")).json()
        document = asyncio.run(read())
        print(json.dumps(document["otel"]))
        """
    )
    assert result.returncode == 0, result.stderr
    otel = json.loads(result.stdout)
    [(key, point)] = otel["http_server_request_duration"].items()
    assert key == (
        "http_request_method=GET;http_response_status_code=200;"
        "network_protocol_version=1_1;url_scheme=http"
    )
    assert point["count"] == 3
    assert 0 < point["p50"] <= point["max"]
    # Every value can be addressed as expvarmon addresses one: a dot-separated path (in a
    # comma-separated list, after an optional `kind:`), so no key holds ".", "," or ":".
    paths = list(leaves(otel))
    assert len(paths) == 7 + 1  # the histogram's 7 figures, the active-requests counter
    for path, value in paths:
        assert not any(c in part for part in path for c in ".,:"), path
        assert lookup(otel, ".".join(path)) == value


def test_a_first_read_of_debug_vars_binds_to_the_providers_set_after_instrument() -> None:
    # A worker whose first request is a scraper's read of /debug/vars (two gunicorn workers,
    # expvarmon polling one) shows what its requests get, and binds to the app's providers.
    result = run(
        """
        import io
        from wsgiref.util import setup_testing_defaults
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        def wsgi_app(environ, start_response):
            start_response("200 OK", [])
            return [b"ok"]

        served = {
            "asgi": otel_bridge.instrument(app, exporters="expvar"),
            "wsgi": otel_bridge.instrument_wsgi(wsgi_app, exporters="expvar"),
        }
        exporter = InMemorySpanExporter()
        provider = TracerProvider()  # the app's, set after instrument()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)

        async def read_asgi():
            transport = httpx.ASGITransport(served["asgi"], client=("127.0.0.1", 1))
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
                return (await c.get("/debug/vars")).json()

        def read_wsgi():
            environ = {"PATH_INFO": "/debug/vars", "REMOTE_ADDR": "127.0.0.1"}
            setup_testing_defaults(environ)
            body = b"".join(served["wsgi"](environ, lambda status, headers: None))
            return json.loads(body)

        timers = {
            "asgi": asyncio.run(read_asgi())["otel_bridge"]["timers"],
            "wsgi": read_wsgi()["otel_bridge"]["timers"],
        }
        drive(served["asgi"])
        print(json.dumps({
            "timers": timers,
            "same_provider": trace.get_tracer_provider() is provider,
            "exported": sorted(span.name for span in exporter.get_finished_spans()),
        }))
        """,
        OTEL_BRIDGE_PURE_PYTHON="true",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "timers": {
            "asgi": "python (OTEL_BRIDGE_PURE_PYTHON)",
            "wsgi": "python (OTEL_BRIDGE_PURE_PYTHON)",
        },
        "same_provider": True,
        "exported": ["GET", "work"],  # the request's spans, to the app's own exporter
    }


def leaves(node: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    if isinstance(node, dict):
        for key, child in node.items():
            yield from leaves(child, (*path, key))
    else:
        yield path, node


def lookup(document: dict[str, object], variable: str) -> object:
    # expvarmon's VarName.ToSlice: drop a "kind:" prefix, split on dots, walk the JSON.
    node: object = document
    for part in variable.split(":", 1)[-1].split("."):
        assert isinstance(node, dict)
        node = node[part]
    return node


def test_unknown_env_exporter_fails_at_startup_naming_the_variable() -> None:
    result = run("otel_bridge.instrument(app)", OTEL_TRACES_EXPORTER="nosuch")
    assert result.returncode == 1
    assert "ConfigError: OTEL_TRACES_EXPORTER='nosuch': expected an installed exporter name" in (
        result.stderr
    )
    assert "console" in result.stderr.splitlines()[-1]


def test_invalid_variable_fails_at_startup() -> None:
    result = run("otel_bridge.instrument(app)", OTEL_BRIDGE_QUEUE_SIZE="lots")
    assert result.returncode == 1
    assert (
        "otel_bridge.errors.ConfigError: OTEL_BRIDGE_QUEUE_SIZE='lots': "
        "expected an integer from 1 to 1000000"
    ) in result.stderr


def test_sdk_disabled_by_environment_leaves_the_app_alone() -> None:
    result = run(
        "from opentelemetry import trace\n"
        "print(otel_bridge.instrument(app) is app, type(trace.get_tracer_provider()).__name__)",
        OTEL_SDK_DISABLED="true",
    )
    assert result.stdout.split() == ["True", "ProxyTracerProvider"]


def test_a_forked_child_exports_its_own_records() -> None:
    result = run(
        """
        import os
        collector = RecordCollector()
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.metrics import MeterProvider
        wrapped = otel_bridge.instrument(app, record_exporters=[collector],
            tracer_provider=TracerProvider(), meter_provider=MeterProvider())
        drive(wrapped, 2)  # the parent's exporter thread is running now
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            drive(wrapped, 3)
            os.write(write, str(len(collector.records)).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        print(len(collector.records), os.read(read, 10).decode())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "5"]
