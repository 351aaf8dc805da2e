"""Who made an example's spans, told by the example itself. Served with ``SPANS_MADE_BY``:

- ``sdk``: a span processor on the provider watches spans start, so the SDK makes every span
  itself (otel_bridge._spans, _timer_spans and _foreign_spans stand down); it counts them.
- ``bridge``: as the example is; otel_bridge counts the spans it builds at the end instead of
  the SDK (a `ServerSpan`, and each timer's or another instrumentation's `TimerSpan` as it is
  exported: the C core makes a timer's without calling `TimerSpan.__init__`).

Either is set up where otel_bridge finds the providers (at the end of an ASGI app's startup;
at import for a WSGI app, which has none), and the count goes to stderr when the app stops:
at the end of an ASGI app's shutdown (uvicorn re-raises SIGTERM, so no atexit hook runs
there), at exit for a WSGI app.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor

from otel_bridge import _timer_spans
from otel_bridge._spans import ServerSpan

__all__ = ["asgi", "wsgi"]

made = {"sdk": 0, "bridge": 0}


class Watching(SpanProcessor):
    """Sees each span start and counts it."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        made["sdk"] += 1


def _counting(cls: Any) -> None:
    original = cls.__init__

    def counted(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made["bridge"] += 1

    cls.__init__ = counted


def _start() -> None:
    by = os.environ.get("SPANS_MADE_BY")
    if by == "sdk":
        provider: Any = trace.get_tracer_provider()
        provider.add_span_processor(Watching())
    elif by == "bridge":
        _counting(ServerSpan)
        export = _timer_spans._export

        def exporting(span: Any, timing: Any) -> None:
            if span.exporters and span.get_span_context().trace_flags.sampled:
                made["bridge"] += 1  # a timer's, or another instrumentation's (a subclass)
            export(span, timing)

        _timer_spans._export = exporting


def _report() -> None:
    by = os.environ.get("SPANS_MADE_BY", "")
    print(f"made by {by}: {made.get(by, 0)} spans", file=sys.stderr, flush=True)


def asgi(app: Any) -> Any:
    """`app` (otel_bridge's ASGI wrapper), counted from the end of its startup on."""

    async def watched(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def watching_send(message: Any) -> None:
            kind = message.get("type")
            if kind == "lifespan.startup.complete":
                _start()  # otel_bridge has just found (or set up) the provider
            elif kind == "lifespan.shutdown.complete":
                _report()
            await send(message)

        await app(scope, receive, watching_send)

    return watched


def wsgi(app: Any) -> Any:
    """`app` (otel_bridge's WSGI wrapper), its providers found now rather than in the first
    request, and counted."""
    app.bridge.bind()
    _start()

    def report() -> None:
        app.bridge.force_flush()  # the spans still queued are counted as they are exported
        _report()

    atexit.register(report)
    return app
