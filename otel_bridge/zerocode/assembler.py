"""`RecordAssembler`: the contrib instrumentations' server spans, and the spans under them, as
they arrive in batches from a BatchSpanProcessor, folded into one `RequestRecord` a request.

It waits for a request's server span (its children end first, possibly in an earlier batch).
Bounded: at most `MAX_TRACES` traces wait, each with at most `MAX_SPANS` spans, for at most
`MAX_AGE_S`; what falls out is counted.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_bridge._health import Health
from otel_bridge._http import normalize_method, sanitize_text, split_host
from otel_bridge.builder import MAXRSS_UNIT as _MAXRSS_UNIT
from otel_bridge.closing import fold_timers
from otel_bridge.record import EMPTY, RequestRecord

__all__ = ["MAX_AGE_S", "MAX_SPANS", "MAX_TRACES", "RecordAssembler"]

MAX_TRACES = 4096
MAX_SPANS = 1000
MAX_AGE_S = 60.0
TAG_PREFIX = "otel_bridge.tag."
FIELD_PREFIX = "otel_bridge.field."
# Server spans otel_bridge's own wrapper made: the wrapper records those requests itself.
OWN_SCOPE = "otel_bridge"


def _first(attributes: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return value
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class RecordAssembler:
    """Groups ended spans into one `RequestRecord` per server span.

    Not thread-safe: one per exporter, called from its BatchSpanProcessor's thread.
    """

    def __init__(
        self,
        health: Health,
        max_traces: int = MAX_TRACES,
        max_spans: int = MAX_SPANS,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        self._health = health
        self._max_traces = max_traces
        self._max_spans = max_spans
        self._max_age_s = max_age_s
        # trace id → (when its first span arrived, spans waiting for their server span)
        self._pending: OrderedDict[int, tuple[float, list[ReadableSpan]]] = OrderedDict()
        self._resources: dict[int, tuple[Any, Mapping[str, AttributeValue]]] = {}

    @property
    def pending_spans(self) -> int:
        return sum(len(spans) for _, spans in self._pending.values())

    def add(self, spans: Sequence[ReadableSpan]) -> list[RequestRecord]:
        records: list[RequestRecord] = []
        now = time.monotonic()
        for span in spans:
            context = span.context
            if context is None:
                continue
            if span.kind is SpanKind.SERVER and _is_http(span):
                scope = span.instrumentation_scope
                if scope is not None and scope.name == OWN_SCOPE:
                    self._pending.pop(context.trace_id, None)
                    continue  # the wrapper records this request itself
                records.append(self._record(span, self._descendants(span)))
                continue
            if span.attributes and "asgi.event.type" in span.attributes:
                continue  # the ASGI instrumentation's own send/receive spans: not work
            entry = self._pending.get(context.trace_id)
            if entry is None:
                entry = (now, [])
                self._pending[context.trace_id] = entry
            if len(entry[1]) >= self._max_spans:
                self._health.drop("zerocode.spans_over_limit")
                continue
            entry[1].append(span)
        self._evict(now)
        return records

    def _evict(self, now: float) -> None:
        pending = self._pending
        while pending:
            trace_id, (first, spans) = next(iter(pending.items()))
            if len(pending) <= self._max_traces and now - first <= self._max_age_s:
                break
            del pending[trace_id]
            # Spans of requests the sampler or a full queue lost the server span of, or that
            # ended after their request: counted, not kept.
            self._health.drop("zerocode.orphan_spans", len(spans))

    def _descendants(self, server: ReadableSpan) -> list[ReadableSpan]:
        context = server.context
        assert context is not None
        entry = self._pending.get(context.trace_id)
        if entry is None:
            return []
        spans = entry[1]
        children: dict[int, list[ReadableSpan]] = {}
        for span in spans:
            parent = span.parent
            if parent is not None:
                children.setdefault(parent.span_id, []).append(span)
        found: list[ReadableSpan] = []
        frontier = [context.span_id]
        while frontier:
            for child in children.pop(frontier.pop(), ()):
                found.append(child)
                if child.context is not None:
                    frontier.append(child.context.span_id)
        if len(found) == len(spans):
            del self._pending[context.trace_id]
        else:
            taken = {id(span) for span in found}
            entry[1][:] = [span for span in spans if id(span) not in taken]
        found.sort(key=lambda span: span.start_time or 0)
        return found

    def _resource(self, span: ReadableSpan) -> Mapping[str, AttributeValue]:
        # As the wrapper's resource: host.name filled in when the SDK's resource lacks it.
        resource = span.resource
        cached = self._resources.get(id(resource))
        if cached is None or cached[0] is not resource:
            attributes = dict(resource.attributes)
            attributes.setdefault("host.name", socket.gethostname())
            cached = self._resources[id(resource)] = (resource, MappingProxyType(attributes))
        return cached[1]

    def _record(self, server: ReadableSpan, children: list[ReadableSpan]) -> RequestRecord:
        attributes: Mapping[str, Any] = server.attributes or EMPTY
        method_original = str(_first(attributes, "http.request.method", "http.method") or "GET")
        target = str(_first(attributes, "http.target") or "")
        path = _first(attributes, "url.path")
        if path is None:
            path = target.partition("?")[0]
        query = _first(attributes, "url.query")
        if query is None:
            query = target.partition("?")[2]
        status = _int(_first(attributes, "http.response.status_code", "http.status_code")) or 0
        start = server.start_time or 0
        end = server.end_time or start
        error_type = _first(attributes, "error.type")
        for event in server.events:
            if event.name == "exception" and event.attributes:
                error_type = error_type or event.attributes.get("exception.type")
        if error_type is None and status >= 500:
            error_type = str(status)
        if error_type is None and server.status.status_code is StatusCode.ERROR and not status:
            error_type = "error"
        tags: dict[str, str] = {}
        fields: dict[str, object] = {}
        headers: dict[str, str] = {}
        for span in (server, *children):
            for key, value in (span.attributes or EMPTY).items():
                if key.startswith(TAG_PREFIX):
                    tags[key[len(TAG_PREFIX) :]] = str(value)
                elif key.startswith(FIELD_PREFIX):
                    fields[key[len(FIELD_PREFIX) :]] = value
        for key, value in attributes.items():
            if key.startswith("http.request.header."):
                name = key[len("http.request.header.") :].replace("_", "-")
                headers[name] = ",".join(value) if isinstance(value, tuple) else str(value)
        # Deduplicated and counted as the wrapper does: the database figures come too.
        timers, counts = fold_timers(children, start)
        if counts is not None:
            fields.update(counts.fields())
        context = server.context
        assert context is not None
        server_port = _int(_first(attributes, "server.port", "net.host.port"))
        client_port = _int(_first(attributes, "client.port", "net.peer.port"))
        server_address = _first(attributes, "server.address", "net.host.name")
        if isinstance(server_address, str):
            # The contrib ASGI instrumentation puts host:port there; the semconv, the host.
            server_address, port_in_address = split_host(server_address)
            server_port = server_port or port_in_address
        client_address = _first(attributes, "client.address", "net.peer.ip")
        user_agent = _first(attributes, "user_agent.original", "http.user_agent")
        view_attributes: Mapping[str, AttributeValue] = MappingProxyType(
            {k: v for k, v in attributes.items() if not k.startswith(("otel_bridge.",))}
        )
        return RequestRecord(
            interface="zerocode",
            method=normalize_method(method_original),
            method_original=method_original,
            route=_first(attributes, "http.route"),
            path=sanitize_text(str(path)),
            query=sanitize_text(str(query)),
            scheme=str(_first(attributes, "url.scheme", "http.scheme") or "http"),
            protocol_version=str(
                _first(attributes, "network.protocol.version", "http.flavor") or "1.1"
            ),
            server_address=str(server_address) if server_address is not None else None,
            server_port=server_port,
            client_address=str(client_address) if client_address is not None else None,
            client_port=client_port,
            user_agent=str(user_agent) if user_agent is not None else None,
            headers=MappingProxyType(headers) if headers else EMPTY,
            status=status,
            response_bytes=0,
            completed=True,
            start_time_ns=start,
            duration_ns=max(0, end - start),
            app_duration_ns=max(0, end - start),
            ru_utime_ns=0,
            ru_stime_ns=0,
            # The process's peak so far, read now: close to the wrapper's (read at the end).
            max_rss_bytes=int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * _MAXRSS_UNIT,
            timers=timers,
            timers_dropped=0,
            tags=MappingProxyType(tags) if tags else EMPTY,
            fields=MappingProxyType(fields) if fields else EMPTY,
            timed_out=False,
            exception=None,
            error_type=str(error_type) if error_type is not None else None,
            trace_id=context.trace_id,
            span_id=context.span_id,
            sampled=context.trace_flags.sampled,
            attributes=view_attributes,
            resource=self._resource(server),
            pid=os.getpid(),
            thread_id=0,
        )


def _is_http(span: ReadableSpan) -> bool:
    attributes = span.attributes or EMPTY
    return "http.request.method" in attributes or "http.method" in attributes
