"""Closing a request, on the export thread: its final status and error type, its server span
ended with the final attributes at the response-complete time, and its immutable
`RequestRecord` built."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from otel_bridge._http import sanitize_text
from otel_bridge._spans import Ending, ServerSpan, SpanPlan, end_span
from otel_bridge._timer_spans import TimerPlan, TimerSpan, export_timer_spans, timer_of
from otel_bridge.builder import MAXRSS_UNIT, RequestBuilder, _span_name
from otel_bridge.child_spans import span_to_timer
from otel_bridge.record import EMPTY, RequestRecord, Timer

__all__ = ["RESPONSE_INCOMPLETE", "Closing"]

_new_record = tuple.__new__
_MAXRSS_UNIT = MAXRSS_UNIT


RESPONSE_INCOMPLETE = "response_incomplete"


class Closing:
    """The closing part of `Bridge` (a mixin)."""

    resource: Mapping[str, AttributeValue]
    _pid: int
    _plan: SpanPlan
    timer_plan: TimerPlan | None

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
        if builder.spans:
            # Its timers' spans first, as the SDK ends children before their parent.
            export_timer_spans(builder.spans, self.timer_plan)
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
        # A TimerSpan, an SDK span, or (SDK span, CPU user ns, CPU system ns).
        for entry in builder.spans or ():
            kind = type(entry)
            if kind is TimerSpan:
                yield timer_of(entry, start)
            elif kind is tuple:
                span, cpu_user, cpu_system = entry
                yield span_to_timer(span, start, cpu_user, cpu_system)
            else:
                yield span_to_timer(entry, start, 0, 0)
