"""The bridge: one OTel server span and one `RequestRecord` per request, fanned out to the views.

Request path (cheap, O(1) per span):
    `Bridge.begin()` starts the server span and puts a `RequestBuilder` in a contextvar;
    `RecordSpanProcessor` notes every span that starts and ends inside it (its timers);
    `Bridge.finish()` stamps the end times and queues the builder.
Background thread (one per process):
    sets the final span attributes and ends the span at the response-complete time, builds the
    immutable `RequestRecord`, records the HTTP server metrics, and hands the record to every
    `RecordExporter`.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import (
    SpanKind,
    StatusCode,
)
from opentelemetry.util.types import AttributeValue

from otel_bridge import __version__
from otel_bridge._context import current as _current
from otel_bridge._failsafe import Health
from otel_bridge._http import normalize_method, sanitize_text
from otel_bridge._otel import (
    build_resource,
    remove_span_processor,
    resolve_meter_provider,
    resolve_tracer_provider,
)
from otel_bridge._scoreboard import current as _scoreboard_current
from otel_bridge._spans import SDK, Ending, ServerSpan, SpanPlan, end_span
from otel_bridge._watchdog import Watchdog, gunicorn_deadline, stack_of
from otel_bridge._worker import Worker
from otel_bridge.config import Settings
from otel_bridge.record import (
    EMPTY,
    RecordExporter,
    RequestRecord,
    TagValue,
    TimeoutAware,
    Timer,
)

__all__ = ["Bridge", "RecordSpanProcessor", "RequestBuilder", "current_builder"]

_getrusage = resource.getrusage
_new_record = tuple.__new__
_NO_CONTEXT = Context()
# Per-thread CPU where the platform has it (Linux); whole-process CPU elsewhere.
_RUSAGE = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)
_perf_ns = time.perf_counter_ns
_time_ns = time.time_ns
_get_ident = threading.get_ident
# ru_maxrss is KiB on Linux, bytes on macOS.
_MAXRSS_UNIT = 1 if os.uname().sysname == "Darwin" else 1024

# Instrumentation scope of otel_bridge.timer() spans: their attributes are the user's tags.
TIMER_SCOPE = "otel_bridge.timer"

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
# Byte-shaped buckets (the contrib middlewares reuse the millisecond defaults, which put every
# body over 10 kB in the overflow bucket).
SIZE_BUCKETS = (0, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000)

# Span attributes that say what kind of work a child span did (semantic conventions).
_DB_KEYS = ("db.system.name", "db.system")
_KIND_KEYS = (("rpc.system", "rpc"), ("messaging.system", "messaging"))


def _span_name(method: str) -> str:
    """A server span's name before the route is known: the method, "HTTP" for `_OTHER`."""
    return method if method != "_OTHER" else "HTTP"


def current_builder() -> RequestBuilder | None:
    """The request being recorded in this context, if any."""
    return _current.get()


class RequestBuilder:
    """Mutable, per-request state; lives in a contextvar while the request runs.

    Only the wrapper that created it and the span processor write to it; after `finish()` it
    is handed to the background thread and never touched by the request path again. Defaults
    live on the class, so a request pays only for the fields it sets.
    """

    span: trace.Span | None = None
    # The exported span, when it was built at the end (otel_bridge._spans).
    finished_span: ReadableSpan | None = None
    context_token: Any = None
    otel_token: object = None
    cpu: tuple[float, float, float] = (0.0, 0.0, 0.0)
    completed = False
    trailers = False
    root_path = ""
    start_ns = 0
    start_time_ns = 0
    method = "GET"
    method_original = "GET"
    path = ""
    query = ""
    scheme = "http"
    protocol_version = "1.1"
    status = 0
    response_bytes = 0
    complete_ns = 0
    app_end_ns = 0
    route: str | None = None
    exception: BaseException | None = None
    # Created on the first child span: most requests have none.
    spans: list[tuple[ReadableSpan, int, int]] | None = None
    open_spans: dict[int, Span] | None = None
    timers_dropped = 0
    tags: dict[str, str] | None = None
    fields: dict[str, object] | None = None
    db_seen: set[int] | None = None  # otel_bridge.django: queries seen, for duplicates
    closed = False
    timed_out = False
    task: Any = None  # the asyncio task serving it (ASGI), for a timeout's stack
    # How to learn the route before the request ends (ASGI: from the scope), for timeouts.
    route_source: Callable[[RequestBuilder], str | None] | None = None
    scope: Any = None  # the ASGI scope, while the request runs
    user_agent: str | None = None
    client: tuple[str, int | None] | None = None
    server: tuple[str, int | None] | None = None
    headers: Mapping[str, str] = EMPTY
    start_attributes: Mapping[str, AttributeValue] = EMPTY

    def __init__(self, bridge: Bridge, interface: str) -> None:
        self.bridge = bridge
        self.interface = interface
        self.thread_id = _get_ident()


class RecordSpanProcessor(SpanProcessor):
    """Turns every span that starts and ends inside a request into a timer of its record.

    O(1) per span on the request thread: a dict insert in `on_start`, a pop and an append in
    `on_end`. Converting spans into `Timer`s happens later, on the bridge's thread.
    """

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge
        self._live: dict[int, tuple[RequestBuilder, int, float, float]] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        builder = _current.get()
        if (
            builder is None
            or builder.span is None
            or builder.closed  # a task the request spawned, outliving it: not its timer
            or builder.bridge is not self._bridge
        ):
            return
        span_id = span.context.span_id
        if self._bridge.measure_cpu:
            usage = _getrusage(_RUSAGE)
            self._live[span_id] = (builder, _get_ident(), usage.ru_utime, usage.ru_stime)
        else:
            self._live[span_id] = (builder, 0, 0.0, 0.0)
        if builder.open_spans is None:
            builder.open_spans = {}
        builder.open_spans[span_id] = span

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None:
            return
        entry = self._live.pop(context.span_id, None)
        if entry is None:
            return
        builder, thread_id, utime, stime = entry
        if builder.open_spans is not None:
            builder.open_spans.pop(context.span_id, None)
        if builder.closed:
            self._bridge.health.drop("timer_after_request")
            return
        if builder.spans is None:
            builder.spans = []
        if len(builder.spans) >= self._bridge.settings.max_timers:
            builder.timers_dropped += 1
            return
        if thread_id == _get_ident() and thread_id:
            usage = _getrusage(_RUSAGE)
            cpu_user = int((usage.ru_utime - utime) * 1e9)
            cpu_system = int((usage.ru_stime - stime) * 1e9)
        else:
            cpu_user = cpu_system = 0
        builder.spans.append((span, cpu_user, cpu_system))

    def forget(self, builder: RequestBuilder) -> None:
        """Drop the entries of spans still open when their request finished (bounded memory)."""
        if builder.open_spans:
            for span_id in list(builder.open_spans):
                self._live.pop(span_id, None)

    def shutdown(self) -> None:
        self._live.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Bridge:
    """Owns the span processor, the metrics, the background thread and the exporters.

    Args:
        settings: validated configuration.
        tracer_provider: provider to add the processor to (default: the global one, created
            from the settings if the process has none).
        meter_provider: provider for the HTTP server metrics (same default).
        exporters: the views and any other `RecordExporter`s to fan records out to.
        metric_readers: readers for the meter provider, if otel_bridge creates it.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        exporters: Sequence[RecordExporter] = (),
        metric_readers: Sequence[MetricReader] = (),
    ) -> None:
        self.settings = settings
        self.health = Health()
        self.exporters = tuple(exporters)
        # The exporters that read records (the Cronitor view, say, reads none): with none,
        # no record is built at all.
        self._readers = tuple(e for e in self.exporters if getattr(e, "reads_records", True))
        for exporter in self.exporters:
            exporter.attach(self.health)
        self.excluded = settings.excluded_regex
        sdk_provider = resolve_tracer_provider(settings, tracer_provider, self.health)
        self.tracer_provider = sdk_provider
        provider = sdk_provider or tracer_provider or trace.get_tracer_provider()
        self.tracer = provider.get_tracer("otel_bridge", __version__)
        self.timer_tracer = provider.get_tracer(TIMER_SCOPE, __version__)
        self.processor = RecordSpanProcessor(self)
        # CPU time per request and per timer is two getrusage() calls each (~1 µs): measured
        # only when a view can show it (records are built only for record exporters).
        self.measure_cpu = bool(self._readers)
        # How each request's server span is made: the SDK's, or built at its end (_spans).
        self._plan = SpanPlan(sdk_provider, self.tracer, self.processor)
        if sdk_provider is not None:
            sdk_provider.add_span_processor(self.processor)
            self.resource: Mapping[str, AttributeValue] = MappingProxyType(
                dict(sdk_provider.resource.attributes)
            )
        else:
            self.resource = MappingProxyType(dict(build_resource(settings).attributes))
        self.meter_provider, self.readers_attached = resolve_meter_provider(
            settings, meter_provider, metric_readers, self.health
        )
        meter = self.meter_provider.get_meter("otel_bridge", __version__)
        self._duration = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        # Opt-in, as in the semantic conventions: two more histogram records per request.
        self._body_sizes = settings.body_size_metrics
        self._response_size = meter.create_histogram(
            "http.server.response.body.size",
            unit="By",
            description="Size of HTTP server response bodies.",
            explicit_bucket_boundaries_advisory=SIZE_BUCKETS,
        )
        self._request_size = meter.create_histogram(
            "http.server.request.body.size",
            unit="By",
            description="Size of HTTP server request bodies (from Content-Length).",
            explicit_bucket_boundaries_advisory=SIZE_BUCKETS,
        )
        self._active: dict[tuple[str, str], int] = {}
        self._active_lock = threading.Lock()
        meter.create_observable_up_down_counter(
            "http.server.active_requests",
            callbacks=[self._observe_active],
            unit="{request}",
            description="Number of active HTTP server requests.",
        )
        self._propagator = propagate.get_global_textmap()
        self.propagation_fields = frozenset(self._propagator.fields)
        self._pid = os.getpid()
        self._worker: Worker[RequestBuilder] = Worker(
            self._export,
            maxsize=settings.queue_size,
            health=self.health,
            on_fork=self._after_fork,
        )
        self._shut_down = False
        # Requests past a deadline get a `timeout` event from the exporters that write them.
        self._timeout_exporters = [e for e in self.exporters if isinstance(e, TimeoutAware)]
        self._watchdog: Watchdog | None = None
        self._watchdog_resolved = False
        self.wants_task = bool(self._timeout_exporters)
        # Called once at shutdown (leaving a shared scoreboard…).
        self.on_shutdown: list[Callable[[], None]] = []
        # The expvar view the wrappers serve, when it is on (set by instrument()).
        self.expvar: Any = None

    def _after_fork(self) -> None:
        # Another thread may have held the lock at fork(): the child gets fresh ones.
        self._pid = os.getpid()
        self._active = {}
        self._active_lock = threading.Lock()

    # -- request path -------------------------------------------------------------------

    def begin(
        self, builder: RequestBuilder, method: str, carrier: Mapping[str, str] | None
    ) -> None:
        """Start the server span and make `builder` current. Pair with `finish()`.

        The span starts with what a sampler may use: method, path, scheme, query and server
        address, from `builder` (which the wrapper has filled in).
        """
        attributes: dict[str, AttributeValue] = {
            "http.request.method": method,
            "url.path": builder.path,
            "url.scheme": builder.scheme,
        }
        if builder.query:
            attributes["url.query"] = builder.query
        server = builder.server
        if server is not None:
            attributes["server.address"] = server[0]
            if server[1] is not None:
                attributes["server.port"] = server[1]
        builder.method_original = method
        builder.method = normalized = normalize_method(method)
        builder.start_attributes = attributes
        parent = self._propagator.extract(carrier) if carrier else None
        key = (normalized, builder.scheme)
        with self._active_lock:
            self._active[key] = self._active.get(key, 0) + 1
        # Wall clock for the span and display, monotonic clock for durations: read together.
        builder.start_time_ns = _time_ns()
        builder.start_ns = _perf_ns()
        builder.context_token = _current.set(builder)
        name = _span_name(normalized)
        span: trace.Span
        mode, exporters = self._plan.current()
        if mode is not SDK:
            span = self._plan.start(name, parent, attributes, exporters)
        else:
            span = self.tracer.start_span(
                name,
                context=parent,
                kind=SpanKind.SERVER,
                attributes=attributes,
                start_time=builder.start_time_ns,
            )
        builder.span = span
        builder.otel_token = otel_context.attach(trace.set_span_in_context(span, parent))
        if self.measure_cpu:
            usage = _getrusage(_RUSAGE)
            builder.cpu = (usage.ru_utime, usage.ru_stime, 0.0)
        if self._timeout_exporters:
            self._watch(builder)
        claim = _scoreboard_current()
        if claim is not None:
            # What the master reports if this worker dies in the request (child_exit).
            context = span.get_span_context()
            request_id = builder.headers.get("x-request-id") or f"{context.trace_id:032x}"
            claim[0].begin_request(claim[1], builder.start_time_ns, builder.path, request_id)

    def _watch(self, builder: RequestBuilder) -> None:
        if not self._watchdog_resolved:
            # Resolved at the first request, not at construction: under gunicorn the
            # arbiter's timeout is known only after fork (post_fork), also with --preload.
            self._watchdog_resolved = True
            configured = self.settings.wide_events_timeout
            deadline = configured if configured is not None else gunicorn_deadline()
            asynchronous = builder.task is not None
            if (deadline or asynchronous) and self._timeout_exporters:
                self._watchdog = Watchdog(deadline or None, self._timed_out, self._loop_blocked)
                if asynchronous:
                    self._watchdog.watch_loop(builder.task.get_loop(), builder.thread_id)
        if self._watchdog is not None:
            self._watchdog.add(builder)

    def _loop_blocked(self, info: dict[str, Any]) -> None:
        inflight = [
            {
                "url.path": sanitize_text(builder.path),
                "http.request.method": builder.method,
                "running_ms": round((_perf_ns() - builder.start_ns) / 1e6, 3),
            }
            for builder in info.pop("inflight")
        ]
        for exporter in self._timeout_exporters:
            try:
                exporter.loop_blocked_event({**info, "inflight": inflight})
            except Exception as exc:  # noqa: BLE001
                self.health.error(f"exporter.{exporter.name}.loop_blocked", exc)

    def _timed_out(self, builder: RequestBuilder) -> None:
        claim = _scoreboard_current()
        if claim is not None:
            claim[0].mark_timeout_written(claim[1])  # the master must not report it again
        record = self._partial(builder)
        open_spans = [
            {"name": span.name, "running_ms": round((_time_ns() - (span.start_time or 0)) / 1e6, 3)}
            for span in list((builder.open_spans or {}).values())
        ]
        stack = stack_of(builder)
        for exporter in self._timeout_exporters:
            try:
                exporter.timeout_event(record, open_spans, stack)
            except Exception as exc:  # noqa: BLE001
                self.health.error(f"exporter.{exporter.name}.timeout", exc)

    def _partial(self, builder: RequestBuilder) -> RequestRecord:
        """What is known of a request still running: times so far, ended timers, fields."""
        now = _perf_ns()
        context = builder.span.get_span_context() if builder.span is not None else None
        route = builder.route
        source = builder.route_source  # once: finish() may clear it meanwhile
        if route is None and source is not None:
            route = source(builder)
        return RequestRecord(
            interface=builder.interface,
            method=builder.method,
            method_original=builder.method_original,
            route=route,
            path=sanitize_text(builder.path),
            query=sanitize_text(builder.query),
            scheme=builder.scheme,
            protocol_version=builder.protocol_version,
            server_address=builder.server[0] if builder.server else None,
            server_port=builder.server[1] if builder.server else None,
            client_address=builder.client[0] if builder.client else None,
            client_port=builder.client[1] if builder.client else None,
            user_agent=builder.user_agent,
            headers=builder.headers,
            status=builder.status,
            response_bytes=builder.response_bytes,
            completed=False,
            start_time_ns=builder.start_time_ns,
            duration_ns=now - builder.start_ns,
            app_duration_ns=now - builder.start_ns,
            ru_utime_ns=0,
            ru_stime_ns=0,
            max_rss_bytes=0,
            timers=tuple(self._timers(builder)),
            timers_dropped=builder.timers_dropped,
            tags=MappingProxyType(dict(builder.tags)) if builder.tags else EMPTY,
            fields=MappingProxyType(dict(builder.fields)) if builder.fields else EMPTY,
            timed_out=True,
            exception=None,
            error_type="timeout",
            trace_id=context.trace_id if context is not None else 0,
            span_id=context.span_id if context is not None else 0,
            sampled=bool(context is not None and context.trace_flags.sampled),
            attributes=MappingProxyType(dict(builder.start_attributes)),
            resource=self.resource,
            pid=self._pid,
            thread_id=builder.thread_id,
        )

    def begin_job(self, builder: RequestBuilder, name: str) -> None:
        """Start recording a job (not an HTTP request): an INTERNAL span named `name`.

        The job's record has interface "job", its name as route and path, status 0 (1 if it
        raised), and no HTTP metrics. Pair with `finish()`.
        """
        builder.method = builder.method_original = ""
        builder.route = builder.path = name
        builder.start_time_ns = _time_ns()
        builder.start_ns = _perf_ns()
        builder.context_token = _current.set(builder)
        span = self.tracer.start_span(
            name, kind=SpanKind.INTERNAL, start_time=builder.start_time_ns
        )
        builder.span = span
        builder.otel_token = otel_context.attach(trace.set_span_in_context(span))
        if self.measure_cpu:
            usage = _getrusage(_RUSAGE)
            builder.cpu = (usage.ru_utime, usage.ru_stime, 0.0)

    def detach(self, builder: RequestBuilder) -> None:
        """Leave the request's context (it goes on in a copy: a streaming WSGI body)."""
        try:
            otel_context.detach(builder.otel_token)  # type: ignore[arg-type]
            _current.reset(builder.context_token)
        except Exception as exc:  # noqa: BLE001
            self.health.error("bridge.detach", exc)

    def finish(self, builder: RequestBuilder, reset: bool = True) -> None:
        """Stamp the end of the request and queue it; never raises.

        Args:
            reset: leave the request's context (False after `detach()`).
        """
        try:
            now = _perf_ns()
            builder.app_end_ns = now
            if not builder.complete_ns:
                builder.complete_ns = now
            if self.measure_cpu:
                usage = _getrusage(_RUSAGE)
                utime, stime, _ = builder.cpu
                builder.cpu = (usage.ru_utime - utime, usage.ru_stime - stime, usage.ru_maxrss)
            if reset:
                otel_context.detach(builder.otel_token)  # type: ignore[arg-type]
                _current.reset(builder.context_token)
            if builder.interface != "job":
                with self._active_lock:
                    self._active[(builder.method, builder.scheme)] -= 1
            builder.closed = True
            if type(builder.span) is ServerSpan:
                builder.span.closed = True
            if self._watchdog is not None:
                self._watchdog.remove(builder)
            claim = _scoreboard_current()
            if claim is not None and builder.interface != "job":
                claim[0].end_request(claim[1])
            if builder.open_spans:
                self.processor.forget(builder)
            builder.otel_token = builder.context_token = None
            if builder.route_source is not None:
                # What only a request still running needs (its timeout's stack and route):
                # the task and the scope would otherwise ride the queue to the exporter
                # thread. (Only where set: a new instance attribute on every builder would
                # cost more than it saves.)
                builder.task = builder.route_source = builder.scope = None
            if not self._readers and not self._body_sizes:
                builder.headers = EMPTY
            if not self._worker.submit(builder):
                self._end_span(builder, builder.span, {})
        except Exception as exc:  # noqa: BLE001 - never raise into the app
            self.health.error("bridge.finish", exc)

    # -- background thread --------------------------------------------------------------

    def _export(self, builders: Sequence[RequestBuilder]) -> None:
        if not self._readers:
            # No view reads records (none on, or only Cronitor): end the spans and record
            # the metrics straight from the builders.
            for builder in builders:
                try:
                    status, error_type, _ = self._close(builder)
                    if builder.interface != "job":
                        self._metrics(builder, status, error_type)
                except Exception as exc:  # noqa: BLE001
                    self.health.error("bridge.record", exc)
            return
        records: list[RequestRecord] = []
        for builder in builders:
            try:
                record = self._build(builder)
            except Exception as exc:  # noqa: BLE001
                self.health.error("bridge.record", exc)
                continue
            records.append(record)
            if record.interface == "job":
                continue
            try:
                self._metrics(builder, record.status, record.error_type)
            except Exception as exc:  # noqa: BLE001
                self.health.error("bridge.metrics", exc)
        if not records:
            return
        for exporter in self._readers:
            try:
                exporter.export(records)
            except Exception as exc:  # noqa: BLE001
                self.health.error(f"exporter.{exporter.name}", exc)

    def _close(self, builder: RequestBuilder) -> tuple[int, str | None, dict[str, AttributeValue]]:
        """The final status and error type; ends the span with its final attributes."""
        status = builder.status
        exception = builder.exception
        job = builder.interface == "job"
        if exception is not None and status == 0:
            status = 1 if job else 500
        error_type: str | None = None
        if exception is not None:
            error_type = type(exception).__qualname__
        elif status >= 500 and not job:
            error_type = str(status)
        final: dict[str, AttributeValue] = {}
        if job:
            if error_type is not None:
                final["error.type"] = error_type
        else:
            if builder.route is not None:
                final["http.route"] = builder.route
            if status:
                final["http.response.status_code"] = status
            if error_type is not None:
                final["error.type"] = error_type
            if builder.user_agent is not None:
                final["user_agent.original"] = builder.user_agent
            if builder.client is not None:
                final["client.address"] = builder.client[0]
                if builder.client[1] is not None:
                    final["client.port"] = builder.client[1]
            final["network.protocol.version"] = builder.protocol_version
        self._end_span(builder, builder.span, final)
        return status, error_type, final

    def _build(self, builder: RequestBuilder) -> RequestRecord:
        method = builder.method
        exception = builder.exception
        status, error_type, final = self._close(builder)
        span = builder.span
        # The SDK span holds the attributes as set (start + final); a non-recording span
        # holds none, so fall back to what we know.
        # After end() the SDK span's attributes are immutable: share them rather than copy.
        attributes: Mapping[str, AttributeValue] | None = getattr(
            builder.finished_span or span, "attributes", None
        )
        if not attributes:
            if type(span) is ServerSpan and span.changes:
                attributes = span.attributes_with(final)  # what the app set on it, too
            else:
                attributes = MappingProxyType({**builder.start_attributes, **final})
        context = span.get_span_context() if span is not None else None
        cpu_user, cpu_system, max_rss = builder.cpu
        server_address = server_port = None
        if builder.server is not None:
            server_address, server_port = builder.server
        client_address = client_port = None
        if builder.client is not None:
            client_address, client_port = builder.client
        # Positional, in field order: tuple.__new__ skips the named tuple's keyword binding
        # (~1 µs a record). Swapped fields fail tests/test_asgi.py (checked by swapping).
        return _new_record(
            RequestRecord,
            (
                builder.interface,  # interface
                method,  # method
                builder.method_original,  # method_original
                builder.route,  # route
                sanitize_text(builder.path),  # path
                sanitize_text(builder.query),  # query
                builder.scheme,  # scheme
                builder.protocol_version,  # protocol_version
                server_address,  # server_address
                server_port,  # server_port
                client_address,  # client_address
                client_port,  # client_port
                builder.user_agent,  # user_agent
                builder.headers,  # headers
                status,  # status
                # A HEAD response carries no body on the wire, whatever the app handed over.
                builder.response_bytes if method != "HEAD" else 0,  # response_bytes
                builder.completed,  # completed
                builder.start_time_ns,  # start_time_ns
                builder.complete_ns - builder.start_ns,  # duration_ns
                builder.app_end_ns - builder.start_ns,  # app_duration_ns
                int(cpu_user * 1e9),  # ru_utime_ns
                int(cpu_system * 1e9),  # ru_stime_ns
                int(max_rss) * _MAXRSS_UNIT,  # max_rss_bytes
                tuple(self._timers(builder)) if builder.spans else (),  # timers
                builder.timers_dropped,  # timers_dropped
                MappingProxyType(builder.tags) if builder.tags else EMPTY,  # tags
                MappingProxyType(builder.fields) if builder.fields else EMPTY,  # fields
                builder.timed_out,  # timed_out
                exception,  # exception
                error_type,  # error_type
                context.trace_id if context is not None else 0,  # trace_id
                context.span_id if context is not None else 0,  # span_id
                bool(context is not None and context.trace_flags.sampled),  # sampled
                attributes,  # attributes
                self.resource,  # resource
                self._pid,  # pid
                builder.thread_id,  # thread_id
            ),
        )

    def _end_span(
        self,
        builder: RequestBuilder,
        span: trace.Span | None,
        final: Mapping[str, AttributeValue],
    ) -> None:
        if span is None:
            return
        renamed = None
        if builder.route is not None and builder.interface != "job":
            renamed = f"{_span_name(builder.method)} {builder.route}"
        code = final.get("http.response.status_code", 0)
        ending = Ending(
            renamed,
            final,
            builder.exception,
            builder.exception is not None or (isinstance(code, int) and code >= 500),
            builder.start_time_ns,
            # The response-complete instant, so the span and the duration metric agree.
            builder.start_time_ns + (builder.complete_ns - builder.start_ns),
        )
        if type(span) is ServerSpan:
            builder.finished_span = self._plan.finish(span, ending)
        elif span.is_recording():
            end_span(span, ending)

    def _timers(self, builder: RequestBuilder) -> Iterable[Timer]:
        start = builder.start_time_ns
        for span, cpu_user, cpu_system in builder.spans or ():
            yield span_to_timer(span, start, cpu_user, cpu_system)

    def _metrics(self, builder: RequestBuilder, status: int, error_type: str | None) -> None:
        """Record the HTTP server metrics of one finished request (`status` and `error_type`
        as `_close()` decided them). The duration goes in with the request's span as
        context, as contrib records it inside the request, so the SDK's default
        (trace-based) exemplar filter links a sampled request's histogram point to its
        trace."""
        method = builder.method
        route = builder.route
        span = builder.span
        attributes: dict[str, AttributeValue] = {
            "http.request.method": method,
            "url.scheme": builder.scheme,
            "network.protocol.version": builder.protocol_version,
        }
        if status:
            attributes["http.response.status_code"] = status
        if route is not None:
            attributes["http.route"] = route
        if error_type is not None:
            attributes["error.type"] = error_type
        context = None
        if span is not None and span.get_span_context().trace_flags.sampled:
            # On an empty context, not the export thread's current one: nothing to copy.
            context = trace.set_span_in_context(span, _NO_CONTEXT)
        # To the response's completion, as the record's duration_ns.
        self._duration.record(
            (builder.complete_ns - builder.start_ns) / 1e9, attributes, context=context
        )
        if self._body_sizes:
            # A HEAD response carries no body on the wire, as the record's response_bytes.
            self._response_size.record(
                builder.response_bytes if method != "HEAD" else 0, attributes
            )
            length = builder.headers.get("content-length")
            if length is not None and length.isdigit():
                self._request_size.record(int(length), attributes)

    def _observe_active(self, options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        with self._active_lock:
            items = list(self._active.items())
        for (method, scheme), value in items:
            yield metrics.Observation(value, {"http.request.method": method, "url.scheme": scheme})

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return self._worker.depth

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every finished request, then flush each exporter; False on timeout."""
        deadline = time.monotonic() + timeout_millis / 1000
        done = self._worker.flush(timeout_millis / 1000)
        for exporter in self.exporters:
            remaining = max(0, int((deadline - time.monotonic()) * 1000))
            try:
                done = exporter.force_flush(remaining) and done
            except Exception as exc:  # noqa: BLE001
                self.health.error(f"exporter.{exporter.name}", exc)
                done = False
        return done

    def shutdown(self, timeout_millis: int = 30_000, keep: Collection[RecordExporter] = ()) -> None:
        """Export what is queued, then shut the exporters down (those in `keep` are only
        flushed: a bridge that replaces this one goes on with them). Idempotent; never
        raises."""
        if self._shut_down:
            return
        self._shut_down = True
        if self._watchdog is not None:
            self._watchdog.stop()
        if self.expvar is not None:
            self.expvar.monitor.uninstall()
        deadline = time.monotonic() + timeout_millis / 1000
        self._worker.stop(timeout_millis / 1000)
        # The spans ended by the worker sit in the provider's batch processors. Servers such as
        # uvicorn re-raise SIGTERM after a graceful shutdown, so atexit hooks (where the SDK
        # flushes) never run: flush here, while the process is still ours.
        for provider in (self.tracer_provider, self.meter_provider):
            flush = getattr(provider, "force_flush", None)
            if flush is None:
                continue
            remaining = max(0, int((deadline - time.monotonic()) * 1000))
            try:
                flush(remaining)
            except Exception as exc:  # noqa: BLE001
                self.health.error("bridge.flush", exc)
        for exporter in self.exporters:
            try:
                if exporter in keep:
                    exporter.force_flush(max(0, int((deadline - time.monotonic()) * 1000)))
                else:
                    exporter.shutdown()
            except Exception as exc:  # noqa: BLE001
                self.health.error(f"exporter.{exporter.name}", exc)
        for callback in self.on_shutdown:
            try:
                callback()
            except Exception as exc:  # noqa: BLE001
                self.health.error("bridge.shutdown", exc)
        if self.tracer_provider is not None:
            # A shut-down bridge's processor only costs: every span would still call it.
            remove_span_processor(self.tracer_provider, self.processor)


def span_to_timer(
    span: ReadableSpan, request_start_ns: int, cpu_user: int, cpu_system: int
) -> Timer:
    """Fold one ended child span into a `Timer`.

    Spans of `otel_bridge.timer()` keep their tags as given. Spans of other instrumentations
    get the tags ``group`` (db, http, rpc, messaging or internal), ``op`` (the span name) and,
    when known, ``server`` (server.address) — bounded-cardinality names a Pinba report or a
    wide-event summary can group by.
    """
    attributes = span.attributes or {}
    start = span.start_time or 0
    end = span.end_time or start
    status = span.status
    error_type = None
    if status.status_code is StatusCode.ERROR:
        raw = attributes.get("error.type")
        error_type = str(raw) if raw is not None else "error"
    scope = span.instrumentation_scope
    tags: tuple[tuple[str, TagValue], ...]
    if scope is not None and scope.name == TIMER_SCOPE:
        kind = "custom"
        tags = tuple(
            (key, _tag_value(value)) for key, value in attributes.items() if key != "error.type"
        )
    else:
        kind = _kind(span, attributes)
        items: list[tuple[str, TagValue]] = [("group", kind), ("op", span.name)]
        server = _server_of(attributes)
        if server is not None:
            items.append(("server", str(server)))
        tags = tuple(items)
    return Timer(
        name=span.name,
        kind=kind,
        tags=tags,
        start_ns=max(0, start - request_start_ns),
        duration_ns=max(0, end - start),
        ru_utime_ns=cpu_user,
        ru_stime_ns=cpu_system,
        error_type=error_type,
    )


def _tag_value(value: Any) -> TagValue:
    if isinstance(value, (str, bool, int, float)):
        return value
    return tuple(value)


def _server_of(attributes: Mapping[str, Any]) -> str | None:
    for key in ("server.address", "net.peer.name"):
        value = attributes.get(key)
        if value is not None:
            return str(value)
    url = attributes.get("url.full", attributes.get("http.url"))
    if isinstance(url, str):
        return urlsplit(url).hostname
    return None


def _kind(span: ReadableSpan, attributes: Mapping[str, Any]) -> str:
    for key in _DB_KEYS:
        if key in attributes:
            return "db"
    for key, kind in _KIND_KEYS:
        if key in attributes:
            return kind
    if span.kind is SpanKind.CLIENT and (
        "http.request.method" in attributes or "http.method" in attributes
    ):
        return "http"
    return "internal"
