"""Child spans → timers: every span that starts and ends inside a request becomes a `Timer`
of its record. `RecordSpanProcessor` notes them on the request path (O(1) a span);
`span_to_timer()` folds each into a timer on the export thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, StatusCode

from otel_bridge._database import db_tags, held_by_open_query, is_database
from otel_bridge._foreign_spans import ForeignSpan
from otel_bridge._otel import other_span_processors
from otel_bridge._timer_spans import TimerSpan
from otel_bridge.builder import RUSAGE_WHO, TIMER_SCOPE, RequestBuilder, getrusage
from otel_bridge.builder import current as _current
from otel_bridge.record import TagValue, Timer, timer_kind

__all__ = [
    "GIVEN",
    "RecordSpanProcessor",
    "changed_timer",
    "foreign_timer",
    "span_to_timer",
    "timer_of",
]

_getrusage = getrusage
_RUSAGE = RUSAGE_WHO
_get_ident = threading.get_ident
_new_timer = tuple.__new__
# What `_fold` reads of a timer's scope: its name.
_TIMER_SCOPE = InstrumentationScope(TIMER_SCOPE)
# The tags of other instrumentations' spans, made once for each (group, op, server): the
# same few queries run in every request, and each timer then holds no tuples of its own.
# Bounded: past that many, tags are made for each timer.
_TAGS: dict[tuple[str, str, str | None], tuple[tuple[str, TagValue], ...]] = {}
_TAGS_KEPT = 4096
# The tags of a timer as given → (the tags kept once, the timer's kind), as bounded.
GIVEN: dict[tuple[tuple[str, Any], ...], tuple[tuple[tuple[str, Any], ...], str]] = {}
_CLIENT = SpanKind.CLIENT


class RecordSpanProcessor(SpanProcessor):
    """Turns every span that starts and ends inside a request into a timer of its record.

    O(1) per span on the request thread: a dict insert in `on_start`, a pop and an append in
    `on_end`. Converting spans into `Timer`s happens later, on the bridge's thread.
    """

    def __init__(self, bridge: Any) -> None:
        self._bridge = bridge
        # span id → its request's builder; with per-timer CPU, (builder, thread, utime, stime).
        self._live: dict[int, Any] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        builder = _current.get()
        bridge = self._bridge
        if (
            builder is None
            or builder.span is None
            or builder.closed  # a task the request spawned, outliving it: not its timer
            or builder.bridge is not bridge
        ):
            return
        context = span._context
        if context is None:
            return
        span_id = context[1]  # SpanContext is a tuple: (trace_id, span_id, …)
        if bridge.measure_timer_cpu:
            usage = _getrusage(_RUSAGE)
            self._live[span_id] = (builder, _get_ident(), usage.ru_utime, usage.ru_stime)
        else:
            self._live[span_id] = builder  # no tuple a span: one object less to collect
        opened = builder.open_spans
        if opened is None:
            opened = builder.open_spans = {}
        opened[span_id] = span

    def on_end(self, span: ReadableSpan) -> None:
        context = span._context
        if context is None:
            return
        span_id = context[1]
        entry = self._live.pop(span_id, None)
        if entry is None:
            return
        measured = type(entry) is tuple
        builder = entry[0] if measured else entry
        if builder.open_spans is not None:
            builder.open_spans.pop(span_id, None)
        if builder.closed:
            self._bridge.health.drop("timer_after_request")
            return
        spans = builder.spans
        if spans is None:
            spans = builder.spans = []
        if len(spans) >= self._bridge.max_timers:
            builder.timers_dropped += 1
            found = getattr(getattr(span, "_attributes", None), "_dict", None) or {}
            parent = span.parent
            scope = span.instrumentation_scope
            if is_database(found) and not held_by_open_query(
                builder.open_spans,
                parent.span_id if parent is not None else 0,
                scope.name if scope is not None else "",
            ):
                builder.db_dropped += 1
                builder.db_dropped_ns += max(0, (span.end_time or 0) - (span.start_time or 0))
            return
        if not measured:
            spans.append(span)  # no CPU time measured: the span alone
            return
        _, thread_id, utime, stime = entry
        if thread_id == _get_ident():
            usage = _getrusage(_RUSAGE)
            cpu_user = int((usage.ru_utime - utime) * 1e9)
            cpu_system = int((usage.ru_stime - stime) * 1e9)
        else:
            cpu_user = cpu_system = 0
        spans.append((span, cpu_user, cpu_system))

    def forget(self, builder: RequestBuilder) -> None:
        """Drop the entries of spans still open when their request finished (bounded memory)."""
        if builder.open_spans:
            for span_id in list(builder.open_spans):
                self._live.pop(span_id, None)

    def shutdown(self) -> None:
        # The provider shuts its processors down in order, and this one is first: the
        # requests that finished are ended before the others (exporters) shut down.
        self._bridge.drain()
        self._live.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """End every request that finished, then flush the provider's other processors: the
        spans just ended sit there (a BatchSpanProcessor's queue), and the provider may have
        flushed them already, before this one, or concurrently."""
        deadline = time.monotonic() + timeout_millis / 1000
        done: bool = self._bridge.drain(timeout_millis)
        provider = self._bridge.tracer_provider
        if provider is None:
            return done
        for processor in other_span_processors(provider, self):
            if isinstance(processor, RecordSpanProcessor):
                continue  # another bridge's (Django rebuilds them): the provider calls it
            remaining = max(0, int((deadline - time.monotonic()) * 1000))
            try:
                done = processor.force_flush(remaining) and done
            except Exception as exc:  # noqa: BLE001 - another processor's failure, not ours
                self._bridge.health.error("bridge.flush", exc)
                done = False
        return done


def span_to_timer(
    span: ReadableSpan, request_start_ns: int, cpu_user: int, cpu_system: int
) -> Timer:
    """Fold one ended child span into a `Timer`.

    Spans of `otel_bridge.timer()` keep their tags as given. A database query's span, from
    any instrumentation, is tagged by `otel_bridge._database.db_tags` (``op`` the SQL verb).
    Spans of other instrumentations get the tags ``group`` (http, rpc, messaging or
    internal), ``op`` (the span name) and, when known, ``server`` (server.address) —
    bounded-cardinality names a Pinba report or a wide-event summary can group by.
    """
    try:
        # The SDK's ReadableSpan read through its fields, not its properties (one Python
        # call each), and its attributes as the plain dict inside BoundedAttributes (whose
        # `in` and `get` go through Python-level Mapping methods).
        name: str = span._name
        start: int = span._start_time or 0
        end: int = span._end_time or start
        status = span._status
        scope = span._instrumentation_scope
        span_kind = span._kind
        found = span._attributes._dict  # type: ignore[union-attr]
    except AttributeError:  # another ReadableSpan: its public API
        name, status, scope, span_kind = (
            span.name,
            span.status,
            span.instrumentation_scope,
            span.kind,
        )
        start = span.start_time or 0
        end = span.end_time or start
        found = None
    attributes: Mapping[str, Any] = found if type(found) is dict else dict(span.attributes or {})
    return _fold(
        name,
        start,
        end,
        status.status_code is StatusCode.ERROR,
        scope,
        span_kind,
        attributes,
        request_start_ns,
        cpu_user,
        cpu_system,
    )


def timer_of(span: TimerSpan, request_start_ns: int) -> Timer:
    """The record's `Timer` for a timer's span the app did not change: its tags as given, as
    `span_to_timer` makes it from the SDK's span (a changed one: `child_spans.changed_timer`)."""
    attributes: Mapping[str, Any] = span.start_attributes or {}  # unchanged (closing)
    error = span.error
    start = span.start_time
    if span.kind is _CLIENT and is_database(attributes):
        # A query's span (Django's): tagged as every instrumentation's query is.
        return _new_timer(
            Timer,
            (
                span.name,
                "db",
                db_tags(span.name, attributes),
                max(0, start - request_start_ns),
                max(0, (span.end_time or start) - start),
                span.cpu_user,
                span.cpu_system,
                error[0] if error is not None else None,
                1,
            ),
        )
    if "error.type" in attributes:
        tags = tuple(
            (key, _tag_value(value)) for key, value in attributes.items() if key != "error.type"
        )
        kind = timer_kind(attributes.get("group"))
    else:
        # Tags from otel_bridge.timer() are scalars or tuples already (_flatten). The same
        # few tag sets come back in every request: each is kept once (bounded), with its kind,
        # so a timer holds no tuples of its own while its record waits for the views.
        given = tuple(attributes.items())
        try:
            kept = GIVEN.get(given)
        except TypeError:  # a value a sampler gave as a list: not kept, still a tag
            kept = (
                tuple((key, _tag_value(value)) for key, value in given),
                timer_kind(attributes.get("group")),
            )
        if kept is None:
            kept = (given, timer_kind(attributes.get("group")))
            if len(GIVEN) < _TAGS_KEPT:
                GIVEN[given] = kept
        tags, kind = kept
    offset = start - request_start_ns
    duration = (span.end_time or start) - start  # ended: its end is set (finish_timer)
    # Positional, in field order (name, kind, tags, start_ns, duration_ns, ru_utime_ns,
    # ru_stime_ns, error_type, hit_count): tuple.__new__ skips the keyword binding.
    return _new_timer(
        Timer,
        (
            span.name,
            kind,
            tags,
            offset if offset > 0 else 0,
            duration if duration > 0 else 0,
            span.cpu_user,
            span.cpu_system,
            error[0] if error is not None else None,
            1,
        ),
    )


def changed_timer(span: TimerSpan, request_start_ns: int) -> Timer:
    """`span_to_timer` for a timer's span the app changed (otel_bridge._timer_spans): the
    timer its SDK span would have made, with the name, status and attributes it ended with,
    and what the end of the timer's block adds to it after an exception."""
    name, code = span.final()
    error = span.error
    if error is not None and code is not StatusCode.OK:
        code = StatusCode.ERROR
    return _fold(
        name,
        span.start_time,
        span.end_time or span.start_time,  # ended: its end is set (finish_timer)
        code is StatusCode.ERROR,
        _TIMER_SCOPE,
        span.kind,
        span.attributes_with({"error.type": error[0]} if error is not None else {}),
        request_start_ns,
        span.cpu_user,
        span.cpu_system,
    )


def foreign_timer(
    span: ForeignSpan, request_start_ns: int, attributes: Mapping[str, Any] | None = None
) -> Timer:
    """`span_to_timer` for another instrumentation's span that was never the SDK's
    (otel_bridge._foreign_spans): the same timer its SDK span would have made; `attributes`:
    its `attributes`, when already read."""
    name, code = span.final()
    if attributes is None:
        attributes = span.attributes
    found = getattr(attributes, "_dict", None)  # BoundedAttributes, read as its plain dict
    return _fold(
        name,
        span.start_time,
        span.end_time or span.start_time,  # ended: its end is set (finish_timer)
        code is StatusCode.ERROR,
        span.tracer._instrumentation_scope,
        span.kind,
        found if type(found) is dict else attributes,
        request_start_ns,
        span.cpu_user,
        span.cpu_system,
    )


def _fold(
    name: str,
    start: int,
    end: int,
    failed: bool,
    scope: Any,
    span_kind: SpanKind,
    attributes: Mapping[str, Any],
    request_start_ns: int,
    cpu_user: int,
    cpu_system: int,
) -> Timer:
    error_type = None
    if failed:
        raw = attributes.get("error.type")
        error_type = str(raw) if raw is not None else "error"
    tags: tuple[tuple[str, TagValue], ...]
    if is_database(attributes):
        kind = "db"
        tags = db_tags(name, attributes)
    elif scope is not None and scope.name == TIMER_SCOPE:
        kind = timer_kind(attributes.get("group"))
        tags = tuple(
            (key, _tag_value(value)) for key, value in attributes.items() if key != "error.type"
        )
    else:
        kind = _kind(span_kind, attributes)
        server = _server_of(attributes)
        key = (kind, name, server)
        found_tags = _TAGS.get(key)
        if found_tags is None:
            items: list[tuple[str, TagValue]] = [("group", kind), ("op", name)]
            if server is not None:
                items.append(("server", str(server)))
            found_tags = tuple(items)
            if len(_TAGS) < _TAGS_KEPT:
                _TAGS[key] = found_tags
        tags = found_tags
    offset = start - request_start_ns
    duration = end - start
    # Positional, in field order: tuple.__new__ skips the named tuple's keyword binding.
    return _new_timer(
        Timer,
        (
            name,
            kind,
            tags,
            offset if offset > 0 else 0,
            duration if duration > 0 else 0,
            cpu_user,
            cpu_system,
            error_type,
            1,
        ),
    )


def _tag_value(value: Any) -> TagValue:
    if isinstance(value, (str, bool, int, float)):
        return value
    return tuple(value)


def _server_of(attributes: Mapping[str, Any]) -> str | None:
    get = attributes.get
    value = get("server.address")
    if value is None:
        value = get("net.peer.name")
    if value is not None:
        return str(value)
    url = get("url.full")
    if url is None:
        url = get("http.url")
    if isinstance(url, str):
        return urlsplit(url).hostname
    return None


def _kind(span_kind: SpanKind, attributes: Mapping[str, Any]) -> str:
    if "rpc.system" in attributes:
        return "rpc"
    if "messaging.system" in attributes:
        return "messaging"
    if span_kind is SpanKind.CLIENT and (
        "http.request.method" in attributes or "http.method" in attributes
    ):
        return "http"
    return "internal"
