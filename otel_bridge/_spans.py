"""The server span without the SDK's per-span machinery, where nothing would notice.

Starting an SDK span costs ~8 µs and ending it ~6 µs, mostly for state no one reads when the
provider's processors only export finished spans. So `SpanPlan` looks at the provider's
processors (again whenever that list changes) and picks one of three ways per request:

- ``sdk``: the SDK span, as `Tracer.start_span` makes it. Used when any processor could act
  on a span while it runs (anything but the SDK's own Batch/Simple processors), when the
  tracer is disabled, or when span limits would change the attributes.
- ``deferred``: the other processors are BatchSpanProcessor / SimpleSpanProcessor, whose
  ``on_start`` does nothing. The request carries a `ServerSpan` (its ids decided now, by the
  provider's id generator and sampler, as the SDK decides them); at the end, on the bridge's
  thread, the finished span is handed to those processors' ``on_end`` as a `ReadableSpan`.
  What the app does to the current span (attributes, events, status, name) is kept and
  replayed on an SDK span built then, as is an exception, so those spans are the SDK's own.
- ``unexported``: our processor is the only one (views only, ``OTEL_TRACES_EXPORTER=none``).
  The request carries a `ServerSpan` and nothing is built at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from otel_bridge import clock

# The types of attribute values the SDK's cleaning keeps as they are.
PLAIN_VALUES = frozenset((str, bool, int, float))

__all__ = ["PLAIN_VALUES", "SAMPLED", "Ending", "Recorded", "ServerSpan", "SpanPlan", "end_span"]

SDK = "sdk"
DEFERRED = "deferred"
UNEXPORTED = "unexported"

SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
# W3C Trace Context level 2 (SDK >= 1.45); 0 where the API does not know the flag.
_RANDOM_TRACE_ID: int = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)
# Every flags byte, made once: a TraceFlags (an int with a __dict__) per request would be one
# more object for the garbage collector to follow while the request waits in the queue.
_FLAGS = tuple(TraceFlags(value) for value in range(256))
# Processors whose on_start is a no-op: a span they see only at its end is the same to them.
_END_ONLY = (BatchSpanProcessor, SimpleSpanProcessor)
_UNSET = Status(StatusCode.UNSET)
_ERROR = Status(StatusCode.ERROR)
# The SDK's logger: a change to an ended span is reported where and as the SDK reports it.
SDK_LOGGER = logging.getLogger("opentelemetry.sdk.trace")
# The SDK method that reports a change to an ended span, by the API method called.
_SDK_METHOD = {"add_event": "_add_event", "record_exception": "_add_event", "add_link": "_add_link"}


class Ending(NamedTuple):
    """How a request's server span ends: its final name (None: keep the span's), the
    attributes set at the end, the exception the app raised, whether the span's status is
    ERROR, and its start and end (ns since the epoch)."""

    name: str | None
    final: Mapping[str, AttributeValue]
    exception: BaseException | None
    error: bool
    start_time: int
    end_time: int


class Recorded:
    """What the app does to a span built at the end, kept in order to be applied to it: the
    part `ServerSpan` and a timer's span (`otel_bridge._timer_spans`) share. Everything the
    API offers works: the ids (children and outgoing trace context use them), and attributes,
    events, links, status, name and exceptions. Changes after the span was closed are
    ignored and logged, as the SDK ignores and logs them on an ended span."""

    __slots__ = ()
    _context: SpanContext
    start_attributes: Mapping[str, AttributeValue] | None
    changes: list[tuple[str, tuple[Any, ...], dict[str, Any]]] | None
    closed: bool

    def _change(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.closed:
            if method in ("set_attribute", "set_attributes"):
                SDK_LOGGER.warning("Setting attribute on ended span.")
            else:
                SDK_LOGGER.warning(
                    "Tried calling %s on an ended span.", _SDK_METHOD.get(method, method)
                )
            return
        if self.changes is None:
            self.changes = []  # type: ignore[misc]  # a slot of each subclass
        self.changes.append((method, args, kwargs))

    def get_span_context(self) -> SpanContext:
        return self._context

    def attributes_with(self, final: Mapping[str, AttributeValue]) -> Mapping[str, AttributeValue]:
        """The attributes an SDK span would end with, when none is built (nothing exports
        it): the start ones, the app's in the order it set them, then `final`; values
        cleaned as the SDK cleans them."""
        merged: dict[str, Any] = dict(self.start_attributes or {})
        for method, args, _ in self.changes or ():
            if method == "set_attribute":
                merged[args[0]] = args[1]
            elif method == "set_attributes":
                merged.update(args[0])
        merged.update(final)
        for key, value in merged.items():
            if type(value) not in PLAIN_VALUES or type(key) is not str or not key:
                return BoundedAttributes(attributes=merged, immutable=True)
        return merged  # only values the SDK's cleaning keeps as they are: no copy

    def is_recording(self) -> bool:
        return not self.closed

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self._change("set_attributes", (dict(attributes),), {})

    def set_attribute(self, key: str, value: Any) -> None:
        self._change("set_attribute", (key, value), {})

    def add_event(
        self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None
    ) -> None:
        if timestamp is None:
            timestamp = clock.wall_ns()
        self._change("add_event", (name, dict(attributes or {}), timestamp), {})

    def add_link(
        self, context: SpanContext | None, attributes: Mapping[str, Any] | None = None
    ) -> None:
        if context is None or not (context.is_valid or attributes or context.trace_state):
            return  # dropped, ended or not, as the SDK drops an invalid link
        self._change("add_link", (context, dict(attributes or {})), {})

    def update_name(self, name: str) -> None:
        self._change("update_name", (name,), {})

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        self._change("set_status", (status, description), {})

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        if timestamp is None:
            timestamp = clock.wall_ns()
        self._change(
            "record_exception",
            (exception,),
            {"attributes": dict(attributes or {}), "timestamp": timestamp, "escaped": escaped},
        )


class ServerSpan(Recorded, trace.Span):
    """The request's server span while it runs, when the SDK span is built at the end.

    `end()` is otel_bridge's: the span ends at the instant the response completes.
    """

    def __init__(
        self,
        context: SpanContext,
        name: str,
        parent: SpanContext | None,
        parent_otel_context: Context | None,
        attributes: Mapping[str, AttributeValue] | None,
        exporters: tuple[SpanProcessor, ...],
    ) -> None:
        self._context = context
        # The processors that export it, as the provider had them when the request began.
        self.exporters = exporters
        self.name = name
        self.parent = parent
        self.parent_otel_context = parent_otel_context
        self.start_attributes = attributes
        self.changes = None
        self.closed = False

    def end(self, end_time: int | None = None) -> None:
        """Ignored: otel_bridge ends the server span when the response is complete."""

    def __repr__(self) -> str:
        return f"ServerSpan({self.name!r}, {self._context})"


def _samples_every_root(sampler: Any) -> bool:
    """Whether `sampler` is the SDK's default, ``ParentBased(ALWAYS_ON)``, left as the SDK made
    it (or wrapped by otel_bridge only): for a span without a parent it answers
    RECORD_AND_SAMPLE, the attributes as given and no trace state, every time."""
    if type(sampler) is not ParentBased or getattr(sampler, "_root", None) is not ALWAYS_ON:
        return False
    patched = vars(sampler).get("should_sample")
    if patched is None:
        return True
    wrapped = getattr(patched, "otel_bridge_wraps", None)
    return getattr(wrapped, "__func__", None) is ParentBased.should_sample


class SpanPlan:
    """Decides, per request, how the server span is made (see the module docstring)."""

    def __init__(self, provider: Any, tracer: Any, ours: SpanProcessor) -> None:
        self._ours = ours
        self._provider = provider
        self._tracer = tracer
        active = getattr(provider, "_active_span_processor", None)
        usable = (
            isinstance(getattr(active, "_span_processors", None), tuple)
            and hasattr(provider, "sampler")
            and hasattr(provider, "id_generator")
            and hasattr(provider, "resource")
            and getattr(tracer, "_instrumentation_scope", None) is not None
            and getattr(tracer, "_span_limits", None) is not None
        )
        self._active = active if usable else None
        self._seen: tuple[SpanProcessor, ...] | None = None
        # (mode, the processors that export a span built at the end): one tuple, replaced
        # whole, so a thread never pairs one decision's mode with another's processors.
        self._decision: tuple[str, tuple[SpanProcessor, ...]] = (SDK, ())
        # (sampler, whether it is the SDK's default for a root span): one tuple, as above.
        self._sampler: tuple[Any, bool] = (None, False)

    @property
    def mode(self) -> str:
        """The mode of the latest decision."""
        return self._decision[0]

    def current(self) -> tuple[str, tuple[SpanProcessor, ...]]:
        """The mode for the next request and the processors it exports to (cheap: the
        processor list is re-read, and only classified again when the SDK replaced it)."""
        active = self._active
        if active is None:
            return self._decision
        processors = active._span_processors
        if processors is not self._seen:
            self._decision = self._classify(processors)
            self._seen = processors
        return self._decision

    def _classify(
        self, processors: tuple[SpanProcessor, ...]
    ) -> tuple[str, tuple[SpanProcessor, ...]]:
        if self._ours not in processors:
            return SDK, ()
        enabled = getattr(self._tracer, "_is_enabled", None)
        if enabled is not None and not enabled():
            return SDK, ()
        limits = self._tracer._span_limits
        if limits.max_attribute_length is not None or (limits.max_span_attributes or 0) < 32:
            # The SDK would truncate or drop attributes: let it.
            return SDK, ()
        others = tuple(p for p in processors if p is not self._ours)
        if not others:
            return UNEXPORTED, ()
        if all(type(p) in _END_ONLY for p in others):
            return DEFERRED, others
        return SDK, ()

    def start(
        self,
        name: str,
        parent: Context | None,
        attributes: Mapping[str, AttributeValue],
        exporters: tuple[SpanProcessor, ...],
    ) -> ServerSpan:
        """The server span's identity, decided as `Tracer.start_span` decides it."""
        provider = self._provider
        generator = provider.id_generator
        parent_context: SpanContext | None = trace.get_current_span(parent).get_span_context()
        if parent_context is not None and parent_context.is_valid:
            trace_id = parent_context.trace_id
            random_id = parent_context.trace_flags & _RANDOM_TRACE_ID
        else:
            parent_context = None
            trace_id = generator.generate_trace_id()
            is_random = getattr(generator, "is_trace_id_random", None)
            random_id = _RANDOM_TRACE_ID if is_random is not None and is_random() else 0
        sampler = provider.sampler
        known = self._sampler
        if known[0] is not sampler:
            known = self._sampler = (sampler, _samples_every_root(sampler))
        if parent_context is None and known[1]:
            # What that sampler answers for a root span, without the ~1 µs of asking it.
            # (The attributes as given: the bridge never changes them after the start.)
            flags = SAMPLED
            trace_state = None
            sampled_attributes: Mapping[str, AttributeValue] = attributes
        else:
            result = sampler.should_sample(parent, trace_id, name, SpanKind.SERVER, attributes)
            flags = SAMPLED if result.decision.is_sampled() else _NOT_SAMPLED
            trace_state = result.trace_state
            sampled_attributes = result.attributes
        if random_id:
            flags = _FLAGS[flags | random_id]
        context = SpanContext(
            trace_id,
            generator.generate_span_id(),
            is_remote=False,
            trace_flags=flags,
            trace_state=trace_state,
        )
        return ServerSpan(context, name, parent_context, parent, sampled_attributes, exporters)

    def finish(self, span: ServerSpan, ending: Ending) -> ReadableSpan | SdkSpan | None:
        """Hand the finished span to the processors that export it; returns it (None when
        nothing exports it: unexported, or not sampled)."""
        span.closed = True
        others = span.exporters
        if not others or not span.get_span_context().trace_flags.sampled:
            # Batch and Simple processors take sampled spans only.
            return None
        if span.changes or ending.exception is not None:
            return self._replay(span, ending)
        attributes: dict[str, AttributeValue] = dict(span.start_attributes or {})
        attributes.update(ending.final)
        tracer = self._tracer
        readable = ReadableSpan(
            name=ending.name or span.name,
            context=span.get_span_context(),
            parent=span.parent,
            resource=self._provider.resource,
            attributes=attributes,
            events=(),
            links=(),
            kind=SpanKind.SERVER,
            status=_ERROR if ending.error else _UNSET,
            start_time=ending.start_time,
            end_time=ending.end_time,
            instrumentation_info=getattr(tracer, "instrumentation_info", None),
            instrumentation_scope=tracer._instrumentation_scope,
        )
        for processor in others:
            processor.on_end(readable)
        return readable

    def _replay(self, span: ServerSpan, ending: Ending) -> SdkSpan:
        """The rare request (an exception, or the app changed its span): build the SDK span
        itself and apply everything in order, so events, limits and status are the SDK's."""
        tracer = self._tracer
        sdk_span = _ReplayedSpan(
            name=span.name,
            context=span.get_span_context(),
            parent=span.parent,
            sampler=self._provider.sampler,
            resource=self._provider.resource,
            attributes=span.start_attributes,
            kind=SpanKind.SERVER,
            span_processor=_Fanout(span.exporters),
            instrumentation_info=getattr(tracer, "instrumentation_info", None),
            limits=tracer._span_limits,
            instrumentation_scope=tracer._instrumentation_scope,
        )
        sdk_span.start(start_time=ending.start_time, parent_context=span.parent_otel_context)
        for method, args, kwargs in span.changes or ():
            getattr(sdk_span, method)(*args, **kwargs)
        end_span(sdk_span, ending)
        return sdk_span


def end_span(span: trace.Span, ending: Ending) -> None:
    """Apply the end of the request to a live span and end it: the final attributes and name,
    the exception as an event, ERROR status. For the SDK's span and for a replayed one alike."""
    if ending.final:
        span.set_attributes(ending.final)
    if ending.name is not None:
        span.update_name(ending.name)
    exception = ending.exception
    if exception is not None:
        span.record_exception(exception)
    if ending.error:
        description = f"{type(exception).__name__}: {exception}" if exception else None
        span.set_status(Status(StatusCode.ERROR, description))
    span.end(end_time=ending.end_time)


class _ReplayedSpan(SdkSpan):
    """The SDK span, built with the identity the request already carried. (The SDK refuses
    `Span(...)` itself, to steer callers to `Tracer.start_span`, which would pick new ids;
    its own tracer builds a subclass in the same way.)"""


class _Fanout(SpanProcessor):
    """The processors a replayed span goes to (not ours: it has its record already)."""

    def __init__(self, processors: Sequence[SpanProcessor]) -> None:
        self._processors = processors

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        for processor in self._processors:
            processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self._processors:
            processor.on_end(span)
