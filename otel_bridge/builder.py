"""`RequestBuilder`: the mutable state of one request while it runs, and the context variable
that holds it. The leaf every layer may import: the wrappers fill it, the span processor adds
child spans to it, the engine turns it into a `RequestRecord` when the request ends."""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.util.types import AttributeValue

from otel_bridge.record import EMPTY

__all__ = [
    "MAXRSS_UNIT",
    "RUSAGE_WHO",
    "TIMER_SCOPE",
    "RequestBuilder",
    "current",
    "current_builder",
    "getrusage",
]

_get_ident = threading.get_ident
getrusage = resource.getrusage
# Per-thread CPU where the platform has it (Linux); whole-process CPU elsewhere.
RUSAGE_WHO = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)
# ru_maxrss is KiB on Linux, bytes on macOS.
MAXRSS_UNIT = 1 if os.uname().sysname == "Darwin" else 1024

# Instrumentation scope of otel_bridge.timer() spans: their attributes are the user's tags.
TIMER_SCOPE = "otel_bridge.timer"

current: ContextVar[RequestBuilder | None] = ContextVar("otel_bridge.request", default=None)


def _span_name(method: str) -> str:
    """A server span's name before the route is known: the method, "HTTP" for `_OTHER`."""
    return method if method != "_OTHER" else "HTTP"


def current_builder() -> RequestBuilder | None:
    """The request being recorded in this context, if any."""
    return current.get()


class RequestBuilder:
    """Mutable, per-request state; lives in a contextvar while the request runs.

    Only the wrapper that created it and the span processor write to it; after `finish()` it
    is handed to the background thread and never touched by the request path again. Defaults
    live on the class, so a request pays only for the fields it sets.
    """

    span: trace.Span | None = None
    # The exported span, when it was built at the end (otel_bridge._spans).
    finished_span: ReadableSpan | None = None
    context_token: Any = None
    otel_token: object = None
    cpu: tuple[float, float, float] = (0.0, 0.0, 0.0)
    completed = False
    trailers = False
    root_path = ""
    start_ns = 0
    start_time_ns = 0
    method = "GET"
    method_original = "GET"
    path = ""
    query = ""
    scheme = "http"
    protocol_version = "1.1"
    status = 0
    response_bytes = 0
    complete_ns = 0
    app_end_ns = 0
    route: str | None = None
    exception: BaseException | None = None
    # Created on the first child span: most requests have none.
    # Ended child spans: an SDK span, (SDK span, CPU user ns, CPU system ns), or a TimerSpan.
    spans: list[Any] | None = None
    open_spans: dict[int, Any] | None = None  # SDK spans and TimerSpans still running
    timers_dropped = 0
    tags: dict[str, str] | None = None
    fields: dict[str, object] | None = None
    # Database queries past OTEL_BRIDGE_MAX_TIMERS (otel_bridge._database): still counted.
    db_dropped = 0
    db_dropped_ns = 0
    closed = False
    timed_out = False
    task: Any = None  # the asyncio task serving it (ASGI), for a timeout's stack
    # Where the app's own code runs when the server's task only waits on it (Django's ASGI
    # handler runs the view in a task or a thread of its own), for a timeout's stack.
    view_task: Any = None
    view_thread: int | None = None
    # How to learn the route before the request ends (ASGI: from the scope), for timeouts.
    route_source: Callable[[RequestBuilder], str | None] | None = None
    scope: Any = None  # the ASGI scope, while the request runs
    board_entry: int = -1  # its entry in the multi-process scoreboard, while it runs
    user_agent: str | None = None
    client: tuple[str, int | None] | None = None
    server: tuple[str, int | None] | None = None
    headers: Mapping[str, str] = EMPTY
    start_attributes: Mapping[str, AttributeValue] = EMPTY

    # The engine recording it (otel_bridge.bridge.Bridge; typed loosely so that this leaf does
    # not import the engine).
    bridge: Any

    def __init__(self, bridge: Any, interface: str) -> None:
        self.bridge = bridge
        self.interface = interface
        self.thread_id = _get_ident()
