"""The floor: the least any instrumentation must do per request to deliver what `bridge` and
`bridge_all` deliver through the OpenTelemetry SDK, with no logic of its own.

This is not a product. It is the yardstick for the targets otel_bridge misses: if even the
floor costs more than a target allows, no instrumentation built on the SDK can meet it.

`floor` per request, on the request thread, with the SDK's own objects:
- trace and span ids from the provider's id generator, the provider's sampler asked, the span
  made current (context attach and detach), as a child span or outgoing request would need;
- at the end, one `ReadableSpan` with the same attributes as the bridge's server span, handed
  to the provider's span processor (a BatchSpanProcessor);
- the request-duration histogram recorded with the span as context (the SDK's exemplar
  filter), with the same metric attributes.

`floor_all` adds what the four views cannot do without, none of their formatting:
- two `getrusage()` calls (Pinba's packet carries the request's CPU time);
- one `send()` of a datagram encoded once at start-up to the Pinba collector;
- one line, formatted once at start-up, written to /dev/null per batch of 64 requests
  (wide events; a buffered file, as the real sink writes per batch);
- one counter increment (expvar).
The Cronitor view costs nothing per request.
"""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from otel_bridge.bridge import DURATION_BUCKETS

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)
_RUSAGE = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)


class Floor:
    def __init__(
        self,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        pinba_port: int | None = None,
    ) -> None:
        self._ids = tracer_provider.id_generator
        self._sampler = tracer_provider.sampler
        self._processor = tracer_provider._active_span_processor
        self._resource = tracer_provider.resource
        self._scope = InstrumentationScope("floor", "1")
        self._duration = meter_provider.get_meter("floor").create_histogram(
            "http.server.request.duration",
            unit="s",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,  # the bridge's own
        )
        self._views = pinba_port is not None
        if pinba_port is not None:
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._socket.connect(("127.0.0.1", pinba_port))
            self._datagram = bytes(380)  # the size of the bridge's datagram for this request
            self._file = open("/dev/null", "w", encoding="utf-8")  # noqa: SIM115
            self._line = "x" * 700 + "\n"  # a wide event's size
            self._lines: list[str] = []
            self._counts: dict[str | None, int] = {}

    def begin(self, attributes: dict[str, Any]) -> tuple[Any, ...]:
        trace_id = self._ids.generate_trace_id()
        result = self._sampler.should_sample(
            None, trace_id, attributes["http.request.method"], SpanKind.SERVER, attributes
        )
        span_context = SpanContext(
            trace_id,
            self._ids.generate_span_id(),
            is_remote=False,
            trace_flags=_SAMPLED if result.decision is Decision.RECORD_AND_SAMPLE else _UNSAMPLED,
        )
        span = NonRecordingSpan(span_context)
        token = otel_context.attach(trace.set_span_in_context(span))
        usage = resource.getrusage(_RUSAGE) if self._views else None
        return span, token, usage, time.time_ns(), time.perf_counter_ns()

    def end(
        self, state: tuple[Any, ...], attributes: dict[str, Any], status: int, route: Any = None
    ) -> None:
        span, token, usage, start_time, start = state
        duration = time.perf_counter_ns() - start
        otel_context.detach(token)
        if usage is not None:
            resource.getrusage(_RUSAGE)
        attributes["http.response.status_code"] = status
        metric_attributes = {
            "http.request.method": attributes["http.request.method"],
            "url.scheme": attributes["url.scheme"],
            "network.protocol.version": attributes["network.protocol.version"],
            "http.response.status_code": status,
        }
        if route is not None:
            route = attributes["http.route"] = metric_attributes["http.route"] = route.path_format
        span_context = span.get_span_context()
        self._processor.on_end(
            ReadableSpan(
                name=attributes["http.request.method"],
                context=span_context,
                resource=self._resource,
                attributes=attributes,
                kind=SpanKind.SERVER,
                start_time=start_time,
                end_time=start_time + duration,
                instrumentation_scope=self._scope,
            )
        )
        self._duration.record(
            duration / 1e9,
            metric_attributes,
            context=trace.set_span_in_context(span),
        )
        if self._views:
            self._socket.send(self._datagram)
            self._lines.append(self._line)
            if len(self._lines) == 64:
                self._file.write("".join(self._lines))
                self._file.flush()
                self._lines.clear()
            self._counts[route] = self._counts.get(route, 0) + 1


def asgi(app: Any, floor: Floor) -> Callable[..., Any]:
    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        client = scope.get("client") or ("", 0)
        attributes: dict[str, Any] = {
            "http.request.method": scope["method"],
            "url.path": scope["path"],
            "url.scheme": scope["scheme"],
            "server.address": scope["server"][0],
            "server.port": scope["server"][1],
            "user_agent.original": headers.get(b"user-agent", b"").decode("latin-1"),
            "client.address": client[0],
            "client.port": client[1],
            "network.protocol.version": scope["http_version"],
        }
        state = floor.begin(attributes)
        status = 0

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_status)
        finally:
            floor.end(state, attributes, status, scope.get("route"))

    return middleware


def wsgi(app: Any, floor: Floor) -> Callable[..., Any]:
    def middleware(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        attributes: dict[str, Any] = {
            "http.request.method": environ["REQUEST_METHOD"],
            "url.path": environ["PATH_INFO"],
            "url.scheme": environ["wsgi.url_scheme"],
            "server.address": environ["SERVER_NAME"],
            "server.port": int(environ["SERVER_PORT"]),
            "user_agent.original": environ.get("HTTP_USER_AGENT", ""),
            "client.address": environ.get("REMOTE_ADDR", ""),
            "client.port": int(environ.get("REMOTE_PORT") or 0),
            "network.protocol.version": environ["SERVER_PROTOCOL"][5:],
        }
        state = floor.begin(attributes)
        status = [0]

        def start(line: str, headers: Any, exc_info: Any = None) -> Any:
            status[0] = int(line[:3])
            return start_response(line, headers, exc_info)

        try:
            body = app(environ, start)
            yield from body
        finally:
            floor.end(state, attributes, status[0])

    return middleware
