"""Timeouts: a request past its deadline (the configured one, or gunicorn's worker timeout)
gets a `timeout` event, written by the worker itself before the server kills it, from what is
known so far; a blocked event loop gets a `loop_blocked` event. The watchdog thread
(otel_bridge._watchdog) calls in here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from opentelemetry.util.types import AttributeValue

from otel_bridge import clock
from otel_bridge._database import QueryCounts
from otel_bridge._health import Health
from otel_bridge._http import sanitize_text
from otel_bridge._scoreboard import current as _scoreboard_current
from otel_bridge._watchdog import Watchdog, gunicorn_deadline, stack_of
from otel_bridge.builder import RequestBuilder
from otel_bridge.config import Settings
from otel_bridge.record import EMPTY, RequestRecord, TimeoutAware, Timer

__all__ = ["Timeouts"]


class Timeouts:
    """The timeout part of `Bridge` (a mixin)."""

    settings: Settings
    health: Health
    resource: Mapping[str, AttributeValue]
    _pid: int
    _timeout_exporters: list[TimeoutAware]
    _watchdog: Watchdog | None
    _watchdog_resolved: bool

    # otel_bridge.closing.Closing's, on the same Bridge.
    _timers: Callable[[RequestBuilder], tuple[tuple[Timer, ...], QueryCounts | None]]

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
                "running_ms": round((clock.monotonic_ns() - builder.start_ns) / 1e6, 3),
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
            # The master must not report this request again if the worker dies in it.
            claim[0].mark_timeout_written(claim[1], builder.board_entry)
        record = self._partial(builder)
        open_spans = [
            {
                "name": span.name,
                "running_ms": round((clock.wall_ns() - (span.start_time or 0)) / 1e6, 3),
            }
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
        now = clock.monotonic_ns()
        context = builder.span.get_span_context() if builder.span is not None else None
        route = builder.route
        source = builder.route_source  # once: finish() may clear it meanwhile
        if route is None and source is not None:
            route = source(builder)
        timers, counts = self._timers(builder)
        fields = dict(builder.fields) if builder.fields else {}
        if counts is not None or builder.db_dropped:
            # The queries so far: an N+1 in progress shows in the timeout event.
            fields.update(
                (counts or QueryCounts()).fields(builder.db_dropped, builder.db_dropped_ns)
            )
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
            timers=timers,
            timers_dropped=builder.timers_dropped,
            tags=MappingProxyType(dict(builder.tags)) if builder.tags else EMPTY,
            fields=MappingProxyType(fields) if fields else EMPTY,
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
