"""Other instrumentations' spans (httpx's, psycopg's, SQLAlchemy's…) at a timer's price.

Inside a request whose server span is built at its end (`otel_bridge._spans`: no processor on
the provider but ours and the SDK's Batch/Simple ones, which only look at ended spans), the
span another instrumentation starts on a tracer of that provider is a `ForeignSpan`: its
identity and sampling decided as `Tracer.start_span` decides them (`start_timer`), its
changes kept in order, and, at its end, a timer of its request. On the export thread it
becomes its record's timer as the SDK's span would (`child_spans.foreign_timer`), and, for the
processors that export it, a `ReadableSpan` equal to the SDK's (an SDK span replayed from it
when the instrumentation changed it: attributes after the start, status, events).

The SDK's `Tracer.start_span` is wrapped once per process (`intercept`), so every tracer is
covered, however and whenever it was made; in a request, its `start_as_current_span` makes
the span current without the API's generators (an exception still goes through the API's
`use_span`). The wrapper falls back to the SDK's `start_span` for anything else: outside a
request, another provider's or a disabled tracer, otel_bridge's own, links, attribute values
the SDK would convert or drop, span limits it would apply, the SDK's own span metrics.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import Tracer
from opentelemetry.trace import Link, SpanKind, StatusCode

from otel_bridge._current_span import attach_span, detach_span
from otel_bridge._spans import PLAIN_VALUES
from otel_bridge._timer_plan import TimerPlan, sdk_metrics_off
from otel_bridge._timer_spans import TimerSpan, start_timer
from otel_bridge.builder import TIMER_SCOPE, RequestBuilder
from otel_bridge.builder import current as _current

__all__ = ["ForeignSpan", "intercept"]

_INTERNAL = SpanKind.INTERNAL
_OK = StatusCode.OK
_UNSET = StatusCode.UNSET
# Tracers otel_bridge makes spans with itself (the server span's plan, timers).
_OWN = frozenset(("otel_bridge", TIMER_SCOPE))
_lock = threading.Lock()
# The SDK's `Tracer.start_as_current_span`, once `intercept` has wrapped it.
_sdk_current: Any = None


class ForeignSpan(TimerSpan):
    """Another instrumentation's span in a request, while nothing needs the SDK's."""

    __slots__ = ("record_exceptions", "status_on_exception", "tracer")

    tracer: Any
    failure = "bridge.foreign_span"
    record_exceptions: bool
    status_on_exception: bool

    def made_by(self, timing: TimerPlan | None) -> Any:
        return self.tracer

    def scope_name(self) -> str:
        name: str = self.tracer._instrumentation_scope.name
        return name

    # What otel_bridge reads of an ended SDK span, for its record (child_spans, closing).
    @property
    def context(self) -> Any:
        return self._context

    @property
    def instrumentation_scope(self) -> Any:
        return self.tracer._instrumentation_scope

    @property
    def attributes(self) -> Mapping[str, Any]:
        """Its attributes as the SDK span ends with them (the start ones, then the app's)."""
        if self.changes:
            return self.attributes_with({})
        return self.start_attributes or {}

    def __repr__(self) -> str:
        return f"ForeignSpan({self.name!r}, {self._context})"


class _Current:
    """`start_as_current_span`'s context manager, in a request: the span made by
    `start_span` (this module's, or the SDK's) made current without the API's generators;
    an exception leaving the block goes through the API's own `use_span`, so that what it
    records and sets is the installed API's, whatever its version does."""

    __slots__ = ("_arguments", "_span", "_token", "_tracer")

    def __init__(self, tracer: Any, arguments: tuple[Any, ...]) -> None:
        self._tracer = tracer
        # (name, context, kind, attributes, links, start_time, record_exception,
        # set_status_on_exception, end_on_exit), as `start_as_current_span` takes them.
        self._arguments = arguments
        self._span: Any = None
        self._token: Any = None

    def __enter__(self) -> Any:
        name, context, kind, attributes, links, start_time, record, status, _ = self._arguments
        span = self._tracer.start_span(
            name=name,
            context=context,
            kind=kind,
            attributes=attributes,
            links=links,
            start_time=start_time,
            record_exception=record,
            set_status_on_exception=status,
        )
        self._span = span
        self._token = attach_span(span)
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        span, token = self._span, self._token
        self._span = self._token = None
        detach_span(token)
        *_, record, status, end_on_exit = self._arguments
        if exc_type is None:
            if end_on_exit:
                span.end()
            return False
        handler = trace.use_span(
            span, end_on_exit=end_on_exit, record_exception=record, set_status_on_exception=status
        )
        handler.__enter__()
        return bool(handler.__exit__(exc_type, exc, tb))

    def __call__(self, func: Any) -> Any:
        """Used as a decorator: the SDK's own, which makes a span for each call."""
        return _sdk_current(self._tracer, *self._arguments)(func)


def intercept() -> None:
    """Give the SDK's `Tracer` the `start_span` of this module: for every tracer, made before
    or after, whoever holds it. Once per process; nothing changes outside a request of a
    bridge bound to the tracer's provider."""
    with _lock:
        if getattr(Tracer.start_span, "otel_bridge_wraps", None) is not None:
            return
        sdk_start = Tracer.start_span

        def start_span(
            self: Tracer,
            name: str,
            context: Any = None,
            kind: SpanKind = _INTERNAL,
            attributes: Mapping[str, Any] | None = None,
            links: Sequence[Link] | None = (),
            start_time: int | None = None,
            record_exception: bool = True,
            set_status_on_exception: bool = True,
        ) -> Any:
            builder = _current.get()
            if builder is not None and not links:
                try:
                    span = _start(builder, self, name, context, kind, attributes, start_time)
                except Exception as exc:  # noqa: BLE001 - never into the instrumentation's call
                    builder.bridge.health.error("bridge.foreign_span", exc)
                    span = None
                if span is not None:
                    span.record_exceptions = record_exception
                    span.status_on_exception = set_status_on_exception
                    return span
            return sdk_start(
                self,
                name,
                context,
                kind,
                attributes,
                links,
                start_time,
                record_exception,
                set_status_on_exception,
            )

        start_span.__doc__ = sdk_start.__doc__
        start_span.otel_bridge_wraps = sdk_start  # type: ignore[attr-defined]
        Tracer.start_span = start_span  # type: ignore[method-assign]

        global _sdk_current
        _sdk_current = Tracer.start_as_current_span

        def start_as_current_span(
            self: Tracer,
            name: str,
            context: Any = None,
            kind: SpanKind = _INTERNAL,
            attributes: Mapping[str, Any] | None = None,
            links: Sequence[Link] | None = (),
            start_time: int | None = None,
            record_exception: bool = True,
            set_status_on_exception: bool = True,
            end_on_exit: bool = True,
        ) -> Any:
            arguments = (
                name,
                context,
                kind,
                attributes,
                links,
                start_time,
                record_exception,
                set_status_on_exception,
                end_on_exit,
            )
            if type(self) is Tracer and _current.get() is not None:
                return _Current(self, arguments)
            return _sdk_current(self, *arguments)

        start_as_current_span.__doc__ = _sdk_current.__doc__
        start_as_current_span.otel_bridge_wraps = _sdk_current  # type: ignore[attr-defined]
        Tracer.start_as_current_span = start_as_current_span  # type: ignore[method-assign]


def _light(tracer: Any, timing: TimerPlan) -> bool:
    """Whether `tracer`'s spans may be `ForeignSpan`s under `timing`: one of its provider's
    tracers, not otel_bridge's own, without the SDK's span metrics. Asked once per plan and
    kept on the tracer: what it depends on is set when the tracer is made and never changes
    (a tracer made before otel_bridge replaced the provider's sampler keeps the old one)."""
    known = tracer.__dict__.get("_otel_bridge_light")
    if known is not None and known[0] is timing:
        return bool(known[1])
    scope = getattr(tracer, "_instrumentation_scope", None)
    light = (
        scope is not None
        and scope.name not in _OWN
        and sdk_metrics_off(tracer)
        and tracer.span_processor is timing.active
        and tracer.sampler is timing.sampler
        and tracer._span_limits is timing.limits
    )
    tracer._otel_bridge_light = (timing, light)
    return light


def _start(
    builder: RequestBuilder,
    tracer: Any,
    name: str,
    context: Any,
    kind: SpanKind,
    attributes: Mapping[str, Any] | None,
    start_time: int | None,
) -> ForeignSpan | None:
    timing = builder.bridge.timer_plan
    if timing is None or not _light(tracer, timing):
        return None  # another provider's tracer, one made before its sampler changed, ours
    enabled = getattr(tracer, "_is_enabled", None)
    if enabled is not None and not enabled():
        return None  # the SDK's non-recording span
    given: dict[str, Any] = {}
    if attributes:
        for key, value in attributes.items():
            if type(value) not in PLAIN_VALUES or type(key) is not str or not key:
                return None  # the SDK converts or drops it (and warns): let it
        # A copy, as the SDK's: the instrumentation may reuse its dict.
        given = dict(attributes)
    span = start_timer(builder, name, given, kind, ForeignSpan, context, start_time)
    if not isinstance(span, ForeignSpan):
        return None  # None: the SDK's span
    span.tracer = tracer
    return span
