"""A timer's span without the SDK's per-span machinery, where nothing would notice.

The server span's plan (`otel_bridge._spans`) applies to the timers of its request. When the
request carries a `ServerSpan` (no processor but ours and the SDK's Batch/Simple ones, which
only look at ended spans), a timer is a `TimerSpan`: its ids and sampling decided as
`Tracer.start_span` decides them for a child, the tags as its attributes, the start and end
stamped by the timer. Nothing is built while the request runs. On the export thread the
request's timers become its record's, and those its processors export become a
`ReadableSpan` equal to the SDK's (an SDK span replayed from them, if the app changed the
span), handed to the processors before the server span. With no processor to export them
(views only), no span is built at all.

Anything else (another processor on the provider, span limits that would change the tags, a
disabled tracer, a timer outside a request) gets the SDK span, as before.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_bridge import clock
from otel_bridge._current_span import CONTEXT as _CONTEXT
from otel_bridge._current_span import SPAN_KEY as _SPAN_KEY
from otel_bridge._database import held_by_open_query, is_database
from otel_bridge._spans import (
    _FLAGS,
    _RANDOM_TRACE_ID,
    SDK_LOGGER,
    Recorded,
    ServerSpan,
    _Fanout,
    _ReplayedSpan,
)
from otel_bridge._timer_plan import TimerPlan
from otel_bridge.builder import RUSAGE_WHO, TIMER_SCOPE, RequestBuilder, getrusage

__all__ = [
    "TIMER_SPAN_SLOTS",
    "TimerSpan",
    "ended_early",
    "export_timer_spans",
    "finish_timer",
    "join_record",
    "start_timer",
]

_INTERNAL = SpanKind.INTERNAL
_CLIENT = SpanKind.CLIENT
_UNSET = Status(StatusCode.UNSET)
_get_current_span = trace.get_current_span
_wall_ns = clock.wall_ns
_get_ident = threading.get_ident
_getrandbits = random.getrandbits
_new_context = tuple.__new__


class TimerSpan(Recorded):
    """A running timer's span, when the SDK span is built at its end (or never).

    Slotted (no per-timer dict for the garbage collector to follow), and a `trace.Span` by
    registration, as the API has it."""

    __slots__ = (
        "_context",
        "builder",
        "changes",
        "closed",
        "cpu",
        "cpu_system",
        "cpu_user",
        "end_time",
        "error",
        "exporters",
        "kind",
        "name",
        "parent",
        "start_attributes",
        "start_time",
    )

    def __init__(
        self,
        context: SpanContext,
        name: str,
        parent: SpanContext,
        attributes: Mapping[str, AttributeValue],
        exporters: tuple[Any, ...],
        start_time: int,
        kind: SpanKind = SpanKind.INTERNAL,
        builder: RequestBuilder | None = None,
    ) -> None:
        self._context = context
        # Its request, until it ends (from any thread); None once ended.
        self.builder = builder
        self.kind = kind  # CLIENT: a database query's (otel_bridge._database)
        self.name = name
        self.parent = parent
        self.start_attributes = attributes
        # The processors that export it, as the provider had them when the request began.
        self.exporters = exporters
        self.start_time = start_time
        self.end_time: int | None = None  # as the SDK span's, until it ends
        self.changes = None
        self.closed = False
        self.error: tuple[str, str] | None = None  # error.type, status description
        self.cpu: tuple[int, float, float] | None = None  # thread, ru_utime, ru_stime at start
        self.cpu_user = self.cpu_system = 0  # its CPU time (ns), when measured

    # As the SDK's span from `tracer.start_span()`: an exception that leaves ``with span:``
    # is recorded and sets the status (another instrumentation's span has its tracer's own).
    record_exceptions = True
    status_on_exception = True
    # Where a failure of otel_bridge's own in `end()` is counted.
    failure = "bridge.timer"

    def end(self, end_time: int | None = None) -> None:
        """Ends it there, as the SDK's span ends, from any thread: it joins its request's
        record now, and the end of the timer's block finds it ended (`ended_early`)."""
        builder = self.builder
        if self.closed or builder is None:
            SDK_LOGGER.warning("Calling end() on an ended span.")
            return
        try:
            finish_timer(builder, self, None, end_time)
        except Exception as exc:  # noqa: BLE001 - never into the app's call
            builder.bridge.health.error(self.failure, exc)

    def final(self) -> tuple[str, StatusCode]:
        """Its name and status code after the app's changes, as the SDK's `update_name()` and
        `set_status()` leave them (an OK is final, an UNSET ignored)."""
        name, code = self.name, StatusCode.UNSET
        for method, args, _ in self.changes or ():
            if method == "update_name":
                name = args[0]
            elif method == "set_status":
                status = args[0]
                given = status.status_code if isinstance(status, Status) else status
                if code is not StatusCode.OK and given is not StatusCode.UNSET:
                    code = given
        return name, code

    def made_by(self, timing: TimerPlan) -> Any:
        """The SDK tracer whose span this stands for (its scope, its resource)."""
        return timing.tracer

    def scope_name(self) -> str:
        return TIMER_SCOPE

    def __enter__(self) -> TimerSpan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """As the SDK span's: an exception is recorded (and sets the status), then it ends."""
        exc_val = exc_info[1] if len(exc_info) > 1 else None
        if isinstance(exc_val, BaseException) and not self.closed:
            if self.record_exceptions:
                self.record_exception(exception=exc_val, escaped=True)
            if self.status_on_exception:
                self.set_status(
                    Status(StatusCode.ERROR, description=f"{type(exc_val).__name__}: {exc_val}")
                )
        self.end()

    def __repr__(self) -> str:
        return f"TimerSpan({self.name!r}, {self._context})"


trace.Span.register(TimerSpan)

# Every slot `TimerSpan.__init__` sets, in the order the C core (otel_bridge._speedups) sets
# them; a test compares a span it made with one made here.
TIMER_SPAN_SLOTS = (
    "_context",
    "builder",
    "kind",
    "name",
    "parent",
    "start_attributes",
    "exporters",
    "start_time",
    "end_time",
    "changes",
    "closed",
    "error",
    "cpu",
    "cpu_user",
    "cpu_system",
)


def start_timer(
    builder: RequestBuilder,
    name: str,
    attributes: Mapping[str, AttributeValue],
    kind: SpanKind = _INTERNAL,
    made: type[TimerSpan] = TimerSpan,
    parent_context: Any = None,
    start_time: int | None = None,
) -> TimerSpan | None:
    """A `TimerSpan` for a timer of `builder`'s request, or None where the SDK span must be
    made (see the module docstring). Another instrumentation's span (`made`, a subclass) may
    give the OpenTelemetry context its parent is in and its start, as `start_span` takes
    them."""
    server = builder.span
    if type(server) is not ServerSpan or builder.closed:
        return None
    bridge = builder.bridge
    timing = bridge.timer_plan
    if timing is None or len(attributes) >= timing.max_attributes:
        return None  # the SDK would drop attributes (error.type may come too): let it
    exporters = server.exporters
    if parent_context is not None:
        current = parent_context.get(_SPAN_KEY)
    else:
        variable = _CONTEXT
        current = variable.get().get(_SPAN_KEY) if variable is not None else _get_current_span()
    held = type(current)
    if held is not TimerSpan and held is not ServerSpan and not isinstance(current, trace.Span):
        return None  # no span (or not one) is current: the API's INVALID_SPAN
    parent = current.get_span_context()
    # A SpanContext is a tuple: (trace_id, span_id, is_remote, trace_flags, trace_state,
    # is_valid), read by index rather than through its properties.
    if not parent[5]:
        return None
    trace_id = parent[0]
    parent_flags = parent[3]
    if timing.default_sampler:
        # ParentBased(ALWAYS_ON) with a local parent: its decision, its trace state.
        flags = parent_flags & 1
        trace_state = parent[4]
    else:
        result = timing.sampler.should_sample(parent_context, trace_id, name, kind, attributes)
        if not result.decision.is_recording():
            return None
        flags = 1 if result.decision.is_sampled() else 0
        trace_state = result.trace_state
        attributes = result.attributes or {}
    if parent_flags & _RANDOM_TRACE_ID:
        flags |= _RANDOM_TRACE_ID
    # SpanContext's own __new__ checks what is known valid here: the parent's trace id, a
    # fresh span id from the provider's generator.
    if timing.random_ids:
        span_id = _getrandbits(64)  # RandomIdGenerator.generate_span_id, without its call
        while not span_id:
            span_id = _getrandbits(64)
    else:
        span_id = timing.generate_span_id()
    context = _new_context(
        SpanContext, (trace_id, span_id, False, _FLAGS[flags], trace_state, True)
    )
    span = made(
        context,
        name,
        parent,
        attributes,
        exporters,
        start_time if start_time is not None else _wall_ns(),
        kind,
        builder,
    )
    # Named in a `timeout` event while it runs.
    opened = builder.open_spans
    if opened is None:
        opened = builder.open_spans = {}
    opened[span_id] = span
    if timing.measure_cpu:
        usage = getrusage(RUSAGE_WHO)
        span.cpu = (_get_ident(), usage.ru_utime, usage.ru_stime)
    return span


def finish_timer(
    builder: RequestBuilder,
    span: TimerSpan,
    exception: BaseException | None,
    end_time: int | None = None,
) -> None:
    """The timer's block ended (or the span, at `end_time`): stamp the end and make it a
    timer of its request. Once: its block's end and its `end()` from another thread may
    race, and only the one that takes it out of the open spans (one atomic pop) goes on."""
    opened = builder.open_spans
    if opened is None or opened.pop(span._context[1], None) is not span:
        return
    span.end_time = end_time if end_time is not None else _wall_ns()
    span.closed = True  # ended: later changes are ignored (and logged), as the SDK's span's
    span.builder = None  # no cycle through the record's spans
    if exception is not None:
        span.error = (type(exception).__qualname__, str(exception))
    if span.cpu is not None:
        thread, utime, stime = span.cpu
        if thread == _get_ident():
            usage = getrusage(RUSAGE_WHO)
            span.cpu_user = int((usage.ru_utime - utime) * 1e9)
            span.cpu_system = int((usage.ru_stime - stime) * 1e9)
    join_record(builder, span)


def join_record(builder: RequestBuilder, span: TimerSpan) -> None:
    """A timer's span just ended (taken from the open ones, stamped): into its request's
    record; or, past the limit or after the request, counted and exported alone."""
    bridge = builder.bridge
    if builder.closed:
        # A task of the request outliving it: no record to join, but exported as the SDK's
        # span would have been.
        span.closed = True
        bridge.health.drop("timer_after_request")
        _export(span, bridge.timer_plan)
        return
    spans = builder.spans
    if spans is None:
        spans = builder.spans = []
    if len(spans) >= bridge.max_timers:
        builder.timers_dropped += 1
        attributes = span.start_attributes or {}
        if is_database(attributes) and not held_by_open_query(
            builder.open_spans, span.parent[1], span.scope_name(), span._context[1]
        ):
            builder.db_dropped += 1
            builder.db_dropped_ns += max(0, (span.end_time or span.start_time) - span.start_time)
        span.closed = True
        _export(span, bridge.timer_plan)
        return
    spans.append(span)  # itself, not in a (span, cpu, cpu) tuple as SDK spans: one object less


def ended_early(failed: bool) -> None:
    """The timer's block ended after the app had ended its span (which joined the record
    then): what the SDK's span says when the timer then marks the error on it (`failed`) and
    ends it again."""
    if failed:
        SDK_LOGGER.warning("Setting attribute on ended span.")
        SDK_LOGGER.warning("Tried calling %s on an ended span.", "set_status")
    SDK_LOGGER.warning("Calling end() on an ended span.")


def export_timer_spans(spans: list[Any], timing: Any) -> None:
    """On the export thread, before the request's server span: hand each of its timers'
    spans to the processors that export it."""
    for span in spans:
        if isinstance(span, TimerSpan):  # a timer's, or another instrumentation's (a subclass)
            span.closed = True
            if span.exporters:
                _export(span, timing)


def _export(span: TimerSpan, timing: Any) -> None:
    exporters = span.exporters
    if not exporters or not span.get_span_context().trace_flags.sampled or timing is None:
        return  # views only, or not sampled: Batch and Simple processors take sampled spans
    error = span.error
    if span.changes:
        _replay(span, timing)
        return
    tracer = span.made_by(timing)
    attributes: dict[str, AttributeValue] = dict(span.start_attributes or {})
    status = _UNSET
    if error is not None:
        attributes["error.type"] = error[0]
        status = Status(StatusCode.ERROR, error[1])
    readable = ReadableSpan(
        name=span.name,
        context=span.get_span_context(),
        parent=span.parent,
        resource=tracer.resource,
        attributes=attributes,
        events=(),
        links=(),
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_info=tracer.instrumentation_info,
        instrumentation_scope=tracer._instrumentation_scope,
    )
    for processor in exporters:
        processor.on_end(readable)


def _replay(span: TimerSpan, timing: Any) -> None:
    """The app changed the timer's span (attributes, events, status…): build the SDK span
    with the timer's identity and apply everything in order, as the SDK would have."""
    tracer = span.made_by(timing)
    sdk_span = _ReplayedSpan(
        name=span.name,
        context=span.get_span_context(),
        parent=span.parent,
        sampler=timing.sampler,
        resource=tracer.resource,
        attributes=span.start_attributes,
        kind=span.kind,
        span_processor=_Fanout(span.exporters),
        instrumentation_info=tracer.instrumentation_info,
        limits=timing.limits,
        instrumentation_scope=tracer._instrumentation_scope,
    )
    sdk_span.start(start_time=span.start_time)
    for method, args, kwargs in span.changes or ():
        getattr(sdk_span, method)(*args, **kwargs)
    error = span.error
    if error is not None:
        # What `timer.__exit__` does to the SDK's span.
        sdk_span.set_attribute("error.type", error[0])
        sdk_span.set_status(Status(StatusCode.ERROR, error[1]))
    sdk_span.end(end_time=span.end_time)
