"""The HTTP server metrics of the semantic conventions: `http.server.request.duration`, the
opt-in body sizes, and `http.server.active_requests`. Recorded on the export thread from the
finished request (the active count on the request path)."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue

from otel_bridge.builder import RequestBuilder

__all__ = ["DURATION_BUCKETS", "SIZE_BUCKETS", "HttpMetrics"]

_NO_CONTEXT = Context()

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
# Byte-shaped buckets (the contrib middlewares reuse the millisecond defaults, which put every
# body over 10 kB in the overflow bucket).
SIZE_BUCKETS = (0, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000)


class HttpMetrics:
    """The metrics part of `Bridge` (a mixin: the request path reads its fields directly)."""

    _body_sizes: bool
    _active: dict[tuple[str, str], int]
    _active_lock: threading.Lock

    def _create_metrics(self, meter: metrics.Meter, body_sizes: bool) -> None:
        self._duration = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        # Opt-in, as in the semantic conventions: two more histogram records per request.
        self._body_sizes = body_sizes
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
