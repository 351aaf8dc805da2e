"""`OtelBridgeMiddleware`: records Django requests where no wrapper does, and hands Django's
matched URL pattern to the request being recorded.

With the wrapped handler (`instrument(get_asgi_application())`) no MIDDLEWARE entry is needed:
the wrapper records every request and hooks the handler for routes. The middleware is for
the rest: Django's test client (`Client`, `AsyncClient`), and handlers wrapped by something
else first. Where no wrapper started a record, it starts one itself from the request, with a
bridge built from the settings (`OTEL_BRIDGE` over the environment) — rebuilt when
`override_settings` changes them. Where a wrapper did, it only adds the route, view and user.

A record the middleware makes starts when the request reaches it and ends when the view's
response comes back: a streaming response is recorded before its body is sent, with its
Content-Length (if any) as its size.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from otel_bridge import clock
from otel_bridge._context import current
from otel_bridge.bridge import RequestBuilder
from otel_bridge.django import _bridges
from otel_bridge.django._routes import after_response, record_match, route_template
from otel_bridge.wsgi import begin_environ

__all__ = [
    "OtelBridgeMiddleware",
    "after_response",
    "record_match",
    "route_template",
]


class OtelBridgeMiddleware:
    """Put it first in MIDDLEWARE (outermost), so the record covers the other middleware.

    Raises:
        ConfigError: at startup, when `OTEL_BRIDGE` or the environment holds an invalid value.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        _bridges.uses_middleware()

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        builder = _begin(request)
        try:
            response = self.get_response(request)
        except BaseException as exc:
            _failed(builder, exc)
            raise
        _done(builder, request, response)
        return response

    async def __acall__(self, request: Any) -> Any:
        builder = _begin(request)
        try:
            pending: Awaitable[Any] = self.get_response(request)
            response = await pending
        except BaseException as exc:
            _failed(builder, exc)
            raise
        _done(builder, request, response)
        return response

    def process_view(self, request: Any, view_func: Any, view_args: Any, view_kwargs: Any) -> None:
        record_match(request.resolver_match)
        return None


def _begin(request: Any) -> RequestBuilder | None:
    """A record for `request` when no wrapper started one; None otherwise. Never raises."""
    if current.get() is not None:
        return None
    built = _bridges.standalone()
    if built is None:
        return None
    bridge, fields = built
    try:
        path = request.path
        expvar = bridge.expvar
        if expvar is not None and (path == expvar.path or path == expvar.ui_path):
            return None  # as the wrappers do: polling /debug/vars is not traffic
        excluded = bridge.excluded
        if excluded is not None and excluded.search(path):
            return None
        scope = getattr(request, "scope", None)
        builder = begin_environ(
            bridge,
            request.META,
            path,
            fields,
            "asgi" if scope is not None else "wsgi",
            request.scheme,
        )
        if scope is not None:
            builder.protocol_version = str(scope.get("http_version") or "1.1")
        return builder
    except Exception as exc:  # noqa: BLE001 - the request goes on unrecorded
        bridge.health.error("django.begin", exc)
        return None


def _failed(builder: RequestBuilder | None, exc: BaseException) -> None:
    if builder is not None:
        builder.exception = exc
        builder.bridge.finish(builder)


def _done(builder: RequestBuilder | None, request: Any, response: Any) -> None:
    after_response(request)  # the user id, for whichever record is current
    if builder is not None:
        _finish(builder, response)


def _finish(builder: RequestBuilder, response: Any) -> None:
    try:
        builder.status = int(response.status_code)
        if response.streaming:
            length = response.get("Content-Length")
            builder.response_bytes = int(length) if length and length.isdigit() else 0
        elif builder.method != "HEAD":
            builder.response_bytes = len(response.content)
        builder.complete_ns = clock.monotonic_ns()
        builder.completed = True
    except Exception as exc:  # noqa: BLE001
        builder.bridge.health.error("django.response", exc)
    builder.bridge.finish(builder)
