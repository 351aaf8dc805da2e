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

import itertools
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from otel_bridge import clock
from otel_bridge._health import Health
from otel_bridge._http import normalize_method
from otel_bridge._lanes import Lane
from otel_bridge._otel import (
    build_resource,
    check_exporters,
    no_providers_yet,
    remove_span_processor,
)
from otel_bridge._scoreboard import current as _scoreboard_current
from otel_bridge._spans import SDK, ServerSpan
from otel_bridge._watchdog import Watchdog
from otel_bridge._worker import Worker
from otel_bridge.builder import (
    RUSAGE_WHO,
    RequestBuilder,
    _span_name,
    current_builder,
    getrusage,
)
from otel_bridge.builder import current as _current
from otel_bridge.child_spans import RecordSpanProcessor, span_to_timer
from otel_bridge.closing import Closing
from otel_bridge.config import Settings
from otel_bridge.http_metrics import DURATION_BUCKETS, SIZE_BUCKETS, HttpMetrics
from otel_bridge.providers import Providers
from otel_bridge.record import (
    EMPTY,
    RecordExporter,
    RequestRecord,
    TimeoutAware,
)
from otel_bridge.timeouts import Timeouts

__all__ = [
    "DURATION_BUCKETS",
    "SIZE_BUCKETS",
    "Bridge",
    "RecordSpanProcessor",
    "RequestBuilder",
    "current_builder",
    "span_to_timer",
]

_getrusage = getrusage
_RUSAGE = RUSAGE_WHO


# How long shutting down may take: our queue and views, then the OTel providers (all at once).
# The process exits within 5 s of SIGTERM (what is documented): the server and the interpreter
# take the rest.
SHUTDOWN_TIMEOUT_MS = 4_000


class Bridge(HttpMetrics, Timeouts, Closing, Providers):
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
        self._inline = tuple(e for e in self._readers if getattr(e, "in_memory", False))
        self._lanes = {
            exporter: Lane(
                exporter.name,
                exporter.export,
                health=self.health,
                max_items=settings.queue_size,
                on_settled=self._report_exported,
            )
            for exporter in self._readers
            if exporter not in self._inline
        }
        for exporter in self.exporters:
            exporter.attach(self.health)
        self.excluded = settings.excluded_regex
        self.processor = RecordSpanProcessor(self)
        # CPU time per request and per timer is two getrusage() calls each (~1 µs): measured
        # only when a view can show it (records are built only for record exporters).
        self.measure_cpu = bool(self._readers)
        self._given = (tracer_provider, meter_provider, tuple(metric_readers))
        self.tracer_provider: TracerProvider | None = None
        self.meter_provider: metrics.MeterProvider | None = None
        self.readers_attached = False
        self.resource: Mapping[str, AttributeValue] = MappingProxyType(
            dict(build_resource(settings).attributes)
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
        # Requests finished, and those handed to the views (what a killed worker loses).
        self._answered = itertools.count(1)
        self._dispatched = 0
        # Requests past a deadline get a `timeout` event from the exporters that write them.
        self._timeout_exporters = [e for e in self.exporters if isinstance(e, TimeoutAware)]
        self._watchdog: Watchdog | None = None
        self._watchdog_resolved = False
        self.wants_task = bool(self._timeout_exporters)
        # Called once at shutdown (leaving a shared scoreboard…).
        self.on_shutdown: list[Callable[[], None]] = []
        # The expvar view the wrappers serve, when it is on (set by instrument()).
        self.expvar: Any = None
        self._bind_lock = threading.Lock()
        # No providers yet: the app may set its own up after wrapping, so they are looked for
        # at the first request or lifespan startup. A bad OTEL_*_EXPORTER still fails here.
        self.bound = not (tracer_provider is None and meter_provider is None and no_providers_yet())
        if self.bound:
            self._bind()
        else:
            check_exporters(settings)

    def drain(self, timeout_millis: float = SHUTDOWN_TIMEOUT_MS) -> bool:
        """End every finished request's span, record its metrics, hand its record on."""
        return self._worker.flush(timeout_millis / 1000)

    def _after_fork(self) -> None:
        # Another thread may have held the lock at fork(): the child gets fresh ones.
        self._pid = os.getpid()
        self._answered = itertools.count(1)
        self._dispatched = 0
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
        if not self.bound:
            self.bind()
        parent = self._propagator.extract(carrier) if carrier else None
        if http := builder.interface != "websocket":  # a connection, not a request
            key = (normalized, builder.scheme)
            with self._active_lock:
                self._active[key] = self._active.get(key, 0) + 1
        # Wall clock for the span and display, monotonic clock for durations: read together.
        builder.start_time_ns = clock.wall_ns()
        builder.start_ns = clock.monotonic_ns()
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
        if self._timeout_exporters and http:
            self._watch(builder)
        claim = _scoreboard_current()
        if claim is not None:
            # What the master reports if this worker dies in the request (child_exit).
            context = span.get_span_context()
            request_id = builder.headers.get("x-request-id") or f"{context.trace_id:032x}"
            builder.board_entry = claim[0].begin_request(
                claim[1], builder.start_time_ns, builder.path, request_id
            )

    def begin_job(self, builder: RequestBuilder, name: str) -> None:
        """Start recording a job (not an HTTP request): an INTERNAL span named `name`.

        The job's record has interface "job", its name as route and path, status 0 (1 if it
        raised), and no HTTP metrics. Pair with `finish()`.
        """
        builder.method = builder.method_original = ""
        builder.route = builder.path = name
        if not self.bound:
            self.bind()
        builder.start_time_ns = clock.wall_ns()
        builder.start_ns = clock.monotonic_ns()
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
            now = clock.monotonic_ns()
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
            if builder.interface not in ("job", "websocket"):
                with self._active_lock:
                    self._active[(builder.method, builder.scheme)] -= 1
            builder.closed = True
            if type(builder.span) is ServerSpan:
                builder.span.closed = True
            if self._watchdog is not None:
                self._watchdog.remove(builder)
            claim = _scoreboard_current()
            if claim is not None:
                if builder.interface != "job":
                    claim[0].end_request(claim[1], builder.board_entry)
                claim[0].set_answered(claim[1], next(self._answered))
            if builder.open_spans:
                self.processor.forget(builder)
            builder.otel_token = builder.context_token = None
            if builder.route_source is not None:
                # What only a request still running needs (its timeout's stack and route):
                # the task and the scope would otherwise ride the queue to the exporter
                # thread. (Only where set: a new instance attribute on every builder would
                # cost more than it saves.)
                builder.task = builder.view_task = builder.route_source = builder.scope = None
            if not self._readers and not self._body_sizes:
                builder.headers = EMPTY
            if not self._worker.submit(builder, len(builder.spans or ())):
                self._end_span(builder, builder.span, {})
        except Exception as exc:  # noqa: BLE001 - never raise into the app
            self.health.error("bridge.finish", exc)

    # -- background thread --------------------------------------------------------------

    def _export(self, builders: Sequence[RequestBuilder]) -> None:
        self._close_batch(builders)
        self._dispatched += len(builders)
        self._report_exported()

    def _report_exported(self) -> None:
        # For the master of a multi-process server: how many of the requests this worker
        # answered are with every view (the rest is lost if it dies now).
        claim = _scoreboard_current()
        if claim is not None:
            exported = self._dispatched
            for lane in self._lanes.values():
                exported = min(exported, lane.settled)
            claim[0].set_exported(claim[1], exported)

    def _close_batch(self, builders: Sequence[RequestBuilder]) -> None:
        if not self._readers:
            # No view reads records (none on, or only Cronitor): end the spans and record
            # the metrics straight from the builders.
            for builder in builders:
                try:
                    status, error_type, _ = self._close(builder)
                    if builder.interface not in ("job", "websocket"):
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
            if record.interface in ("job", "websocket"):  # no HTTP request: no HTTP metrics
                continue
            try:
                self._metrics(builder, record.status, record.error_type)
            except Exception as exc:  # noqa: BLE001
                self.health.error("bridge.metrics", exc)
        if not records:
            return
        for exporter in self._inline:
            try:
                exporter.export(records)
            except Exception as exc:  # noqa: BLE001
                self.health.error(f"exporter.{exporter.name}", exc)
        if self._lanes:
            batch = tuple(records)  # one immutable batch, shared by every lane
            for lane in self._lanes.values():
                lane.submit(batch)

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return self._worker.depth

    def lanes(self) -> dict[str, dict[str, int | bool]]:
        """Each laned view's records waiting, and whether it is behind (dropping)."""
        return {
            lane.name: {"queued": lane.depth, "behind": lane.behind}
            for lane in self._lanes.values()
        }

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every finished request, then flush each exporter; False on timeout."""
        deadline = time.monotonic() + timeout_millis / 1000
        done = self._worker.flush(timeout_millis / 1000)
        for exporter in self.exporters:
            remaining = max(0.0, deadline - time.monotonic())
            lane = self._lanes.get(exporter)
            if lane is not None and not lane.flush(remaining):
                done = False
                continue
            try:
                done = exporter.force_flush(int(remaining * 1000)) and done
            except Exception as exc:  # noqa: BLE001
                self.health.error(f"exporter.{exporter.name}", exc)
                done = False
        return done

    def shutdown(
        self,
        timeout_millis: int = SHUTDOWN_TIMEOUT_MS,
        keep: Collection[RecordExporter] = (),
        final: bool = True,
    ) -> None:
        """Export what is queued, then shut the exporters down, all within `timeout_millis`
        (a Collector that is down or hung included). Those in `keep` are only flushed: a
        bridge that replaces this one goes on with them. `final`: the process is ending, so
        the providers otel_bridge created are shut down too (else only flushed: a bridge
        that replaces this one records into them). Idempotent; never raises."""
        if self._shut_down:
            return
        self._shut_down = True
        if self._watchdog is not None:
            self._watchdog.stop()
        if self.expvar is not None:
            self.expvar.monitor.uninstall()
        deadline = time.monotonic() + timeout_millis / 1000
        self._worker.stop(timeout_millis / 1000)
        stuck = set()
        for exporter, lane in self._lanes.items():
            if not lane.stop(max(0.0, deadline - time.monotonic())):
                stuck.add(exporter)  # still inside its export: do not wait on it again
        self._close_providers(deadline, final)
        for exporter in self.exporters:
            if exporter in stuck:
                continue
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
