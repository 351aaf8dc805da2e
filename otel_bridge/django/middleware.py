"""Hand Django's matched URL pattern to the request otel_bridge is recording.

Django resolves the URL inside its handler, after our wrapper has started the request, so the
template (``resolver_match.route``) reaches the record from here: `http.route`, the span
name, Pinba's script_name, the expvar route statistics and the wide event all use it. Works
for sync and async views, under WSGI and ASGI (Django runs sync middleware in a thread that
sees the request's context).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from otel_bridge._context import current

__all__ = ["RouteMiddleware", "route_template"]


def route_template(resolver_match: Any) -> str | None:
    """The template as `http.route` wants it: ``users/<int:uid>/`` → ``/users/<int:uid>/``.

    Patterns from `re_path()` are regular expressions and stay as written (``^a/(?P<y>…)$``),
    since no leading slash makes them clearer. Never raises.
    """
    route = getattr(resolver_match, "route", None)
    if not isinstance(route, str):
        return None
    if route.startswith("^"):
        return route
    return "/" + route


class RouteMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        response: Awaitable[Any] = self.get_response(request)
        return await response

    def process_view(self, request: Any, view_func: Any, view_args: Any, view_kwargs: Any) -> None:
        builder = current.get()
        if builder is None:
            return None
        try:
            route = route_template(request.resolver_match)
            if route is not None:
                builder.route = route
        except Exception as exc:  # noqa: BLE001 - the request goes on without a route
            builder.bridge.health.error("django.route", exc)
        return None
