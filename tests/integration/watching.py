"""A span processor that watches spans start, so that the SDK makes every span itself
(otel_bridge._spans, _timer_spans and _foreign_spans stand down), added to an app's provider
where otel_bridge finds it: the examples wrapped so (watched_shop, watched_django_wsgi,
watched_django_asgi) are the references their default runs are compared with. How many spans
it saw start goes to stderr when the app stops: at the end of an ASGI app's shutdown (uvicorn
re-raises SIGTERM, so no atexit hook runs), at exit for a WSGI app."""

from __future__ import annotations

import atexit
import sys
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor

__all__ = ["asgi", "wsgi"]


class Watching(SpanProcessor):
    """Sees each span start and counts it."""

    started = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        Watching.started += 1


def _report() -> None:
    print(f"watching: {Watching.started} spans started", file=sys.stderr, flush=True)


def _watch() -> None:
    provider: Any = trace.get_tracer_provider()
    provider.add_span_processor(Watching())


def asgi(app: Any) -> Any:
    """`app` (otel_bridge's ASGI wrapper), watched from the end of its startup on, where
    otel_bridge finds the providers."""

    async def watched(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def watching_send(message: Any) -> None:
            kind = message.get("type")
            if kind == "lifespan.startup.complete":
                _watch()  # otel_bridge has just found (or set up) the provider
            elif kind == "lifespan.shutdown.complete":
                _report()
            await send(message)

        await app(scope, receive, watching_send)

    return watched


def wsgi(app: Any) -> Any:
    """`app` (otel_bridge's WSGI wrapper), its providers found now rather than in the first
    request (a WSGI app has no startup), and watched."""
    app.bridge.bind()
    _watch()
    atexit.register(_report)
    return app
