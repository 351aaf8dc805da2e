"""Closing a request, on the export thread: its final status and error type, its server span
ended with the final attributes at the response-complete time, and its immutable
`RequestRecord` built."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from otel_bridge import _database, _timer_spans
from otel_bridge._compiled import set_up
from otel_bridge._database import (
    COUNT_SLOTS,
    FIGURES,
    MAX_STATEMENTS,
    QueryCounts,
    is_database,
    statement_of,
)
from otel_bridge._foreign_spans import ForeignSpan
from otel_bridge._http import sanitize_text
from otel_bridge._spans import Ending, ServerSpan, SpanPlan, end_span
from otel_bridge._timer_plan import TimerPlan
from otel_bridge._timer_spans import TIMER_SPAN_SLOTS, TimerSpan, export_timer_spans
from otel_bridge.builder import MAXRSS_UNIT, TIMER_SCOPE, RequestBuilder, _span_name
from otel_bridge.child_spans import GIVEN, changed_timer, foreign_timer, span_to_timer, timer_of
from otel_bridge.record import EMPTY, RequestRecord, Timer

__all__ = ["RESPONSE_INCOMPLETE", "Closing", "fold_timers"]

if TYPE_CHECKING:
    from otel_bridge.config import Settings

_new_record = tuple.__new__
_CLIENT = SpanKind.CLIENT
_MAXRSS_UNIT = MAXRSS_UNIT


RESPONSE_INCOMPLETE = "response_incomplete"
# A request's timers and its database figures.
Folded = tuple[tuple[Timer, ...], QueryCounts | None]


class Closing:
    """The closing part of `Bridge` (a mixin)."""

    resource: Mapping[str, AttributeValue]
    _pid: int
    _plan: SpanPlan
    timer_plan: TimerPlan | None
    settings: Settings

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
        elif status and not builder.completed and not job:
            # The response started and never ended: the client went away mid-response (or the
            # app gave up on it). The HTTP conventions mark a dropped connection with
            # error.type; with no exception to name, this value (docs/guarantees.md).
            error_type = RESPONSE_INCOMPLETE
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
                # What the app set on it, too (read-only, as the SDK span's are).
                attributes = MappingProxyType(span.attributes_with(final))
            else:
                attributes = MappingProxyType({**builder.start_attributes, **final})
        context = span.get_span_context() if span is not None else None
        cpu_user, cpu_system, max_rss = builder.cpu
        timers: tuple[Timer, ...] = ()
        counts = None
        if builder.spans:
            timers, counts = self._timers(builder)
        fields: Mapping[str, object] | None = builder.fields
        if counts is not None or builder.db_dropped:
            # QueryCounts.fields, in C where it is built and allowed.
            figures = (_COMPILED_FIELDS if not self.settings.pure_python else QueryCounts.fields)(
                counts or QueryCounts(), builder.db_dropped, builder.db_dropped_ns
            )
            fields = {**fields, **figures} if fields else figures
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
                timers,  # timers
                builder.timers_dropped,  # timers_dropped
                MappingProxyType(builder.tags) if builder.tags else EMPTY,  # tags
                MappingProxyType(fields) if fields else EMPTY,  # fields
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
        if builder.spans:
            # Its timers' spans first, as the SDK ends children before their parent.
            close = _COMPILED_CLOSE if not self.settings.pure_python else export_timer_spans
            close(builder.spans, self.timer_plan)
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

    def _timers(self, builder: RequestBuilder) -> tuple[tuple[Timer, ...], QueryCounts | None]:
        """The request's timers, in end order, and its database figures (`fold_timers`, in C
        where it is built and allowed)."""
        fold = _COMPILED_FOLD if _COMPILED_FOLD and not self.settings.pure_python else fold_timers
        return fold(builder.spans or (), builder.start_time_ns)


def fold_timers(spans: Sequence[Any], start: int) -> Folded:
    """A request's timers from its ended child spans (in their order), and its database
    figures when it ran queries; `start`: the request's start (ns since the epoch).

    A query's span (an instrumentation's) inside a database timer of the request, as its
    child or as another instrumentation's sibling, is the same query seen twice (an
    ORM's span holding the driver's): the outer one is kept, the inner one left out
    (otel_bridge._database). An app's ``timer(group="db")`` around exactly one query
    stands for it; around several, their timers are kept too. The figures count queries'
    spans, each once: the outermost of nested ones. The spans: TimerSpans, SDK spans (or
    ReadableSpans), or (SDK span, CPU user ns, CPU system ns)."""
    timers: list[Timer] = []
    # Whether a query's span is among them: only then are the database timers looked at
    # again (an app's timers alone are neither deduplicated nor counted), so a request
    # without queries pays one comparison per timer.
    any_query = False
    # Other instrumentations' spans' attributes, by index, as read once (merged when set late).
    foreign: dict[int, Mapping[str, Any]] = {}
    for entry in spans:
        kind = type(entry)
        if kind is TimerSpan:
            timer = timer_of(entry, start) if not entry.changes else changed_timer(entry, start)
            if entry.kind is _CLIENT and timer.kind == "db":
                any_query = True
        elif kind is ForeignSpan:
            foreign[len(timers)] = attributes = entry.attributes
            timer = foreign_timer(entry, start, attributes)
            if timer.kind == "db":
                any_query = True
        else:
            timer = (
                span_to_timer(entry[0], start, entry[1], entry[2])
                if kind is tuple
                else span_to_timer(entry, start, 0, 0)
            )
            if timer.kind == "db":
                any_query = True
        timers.append(timer)
    if not any_query:
        return tuple(timers), None
    # By the timers' indices: a request still running (a timeout) may have more spans now.
    databases = [
        (index, spans[index][0] if type(spans[index]) is tuple else spans[index])
        for index, timer in enumerate(timers)
        if timer.kind == "db"
    ]
    # (index in timers, span id, parent span id, statement, a query's span?, scope)
    queries: list[_Query] = []
    for index, span in databases:
        if type(span) is TimerSpan:
            attributes = span.start_attributes or {}
            span_id, parent_id, scope = span._context[1], span.parent[1], TIMER_SCOPE
        else:
            attributes = foreign.get(index) or span.attributes or {}
            parent = span.parent
            span_id = span.context.span_id
            parent_id = parent.span_id if parent is not None else 0
            found = span.instrumentation_scope
            scope = found.name if found is not None else ""
        statement = statement_of(attributes)
        queries.append((index, span_id, parent_id, statement, is_database(attributes), scope))
    counts = None
    inner: set[int] = set()
    held_by_app: dict[int, list[int]] = {}
    # Outer first: by start, the longer of two that start together first. The timers still
    # running when the next one starts are a stack; the nearest that outlasts it holds it.
    order = sorted(queries, key=lambda q: (timers[q[0]].start_ns, -timers[q[0]].duration_ns))
    stack: list[_Query] = []
    for item in order:
        index, _, _, statement, instrumented, _ = item
        begin = timers[index].start_ns
        finish = begin + timers[index].duration_ns
        while stack and _end(timers, stack[-1]) < begin:
            stack.pop()
        outer = None
        for candidate in reversed(stack):
            if _end(timers, candidate) >= finish:
                outer = candidate
                break
        stack.append(item)
        if not instrumented:
            continue  # a timer(group="db") of the app: a timer, not a query it counts
        if outer is not None and _same_query(item, outer):
            if outer[4]:
                inner.add(index)  # the outer one is the timer, and the query
                continue
            held_by_app.setdefault(outer[0], []).append(index)
        if statement is not None:  # not a "connect"
            if counts is None:
                counts = QueryCounts()
            counts.add(timers[index].duration_ns, statement)
    for held in held_by_app.values():
        if len(held) == 1:
            inner.add(held[0])  # an app's timer around one query: that query's timer
    if inner:
        timers = [timer for index, timer in enumerate(timers) if index not in inner]
    return tuple(timers), counts


_Query = tuple[int, int, int, "str | None", bool, str]


def _end(timers: list[Timer], query: _Query) -> int:
    timer = timers[query[0]]
    return timer.start_ns + timer.duration_ns


def _same_query(query: _Query, outer: _Query) -> bool:
    """Whether a query's span inside `outer` (in time) is the query `outer` already is: its
    child (Django's span, an app's ``timer(group="db")``), or, for instrumentations that leave
    their span out of the context (SQLAlchemy), a sibling of another instrumentation with no
    other statement. Two spans of one instrumentation are two queries (asyncio.gather)."""
    if query[2] == outer[1]:
        return True
    if not outer[4] or query[2] != outer[2] or query[5] == outer[5]:
        return False
    return query[3] is None or outer[3] is None or query[3] == outer[3]


def _compiled() -> Any:
    """otel_bridge._speedups set up for the fold: its `fold_timers` for a request whose spans
    are all timers' the app did not change, with tags seen before (`child_spans.timer_of`),
    or queries' (Django's, or another instrumentation's: `foreign_timer`) with tags made
    before, its database timers one after another in time or a query's span holding its own
    child query's span or another instrumentation's span of the same query beside it, left
    out as `fold_timers` leaves it (it calls `fold_timers` for any other); its
    `query_fields`, as
    `QueryCounts.fields`; its `close_timer_spans`, as `export_timer_spans`. None without the
    C core."""
    return set_up(
        "setup_fold",
        timer_span=TimerSpan,
        foreign_span=ForeignSpan,
        timer=Timer,
        slots=tuple(vars(TimerSpan)[name] for name in TIMER_SPAN_SLOTS),
        internal=SpanKind.INTERNAL,
        client=_CLIENT,
        given=GIVEN,
        db_tags=_database._TAGS,
        counts=QueryCounts,
        count_slots=tuple(vars(QueryCounts)[name] for name in COUNT_SLOTS),
        max_statements=MAX_STATEMENTS,
        figures=FIGURES,
        fields=QueryCounts.fields,
        export=_timer_spans,
        fallback=fold_timers,
    )


_COMPILED = _compiled()
_COMPILED_FOLD: Callable[[Sequence[Any], int], Folded] | None = (
    _COMPILED.fold_timers if _COMPILED is not None else None
)
_COMPILED_FIELDS: Callable[[QueryCounts, int, int], dict[str, int | float]] = (
    _COMPILED.query_fields if _COMPILED is not None else QueryCounts.fields
)
_COMPILED_CLOSE: Callable[[list[Any], Any], None] = (
    _COMPILED.close_timer_spans if _COMPILED is not None else export_timer_spans
)
