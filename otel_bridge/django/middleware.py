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
from django.utils.functional import empty

from otel_bridge._context import current

__all__ = ["RouteMiddleware", "after_response", "record_match", "route_template"]


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
        response = self.get_response(request)
        after_response(request)
        return response

    async def __acall__(self, request: Any) -> Any:
        response: Awaitable[Any] = self.get_response(request)
        result = await response
        after_response(request)
        return result

    def process_view(self, request: Any, view_func: Any, view_args: Any, view_kwargs: Any) -> None:
        record_match(request.resolver_match)
        return None


def record_match(match: Any) -> None:
    """The resolved pattern as the request's route, and the view's name for its wide event.
    Never raises."""
    builder = current.get()
    if builder is None:
        return
    try:
        route = route_template(match)
        if route is not None:
            builder.route = route
        view = getattr(match, "_func_path", None) or getattr(match, "view_name", None)
        if view:
            fields = builder.fields
            if fields is None:
                fields = builder.fields = {}
            fields[".django.view"] = view
    except Exception as exc:  # noqa: BLE001 - the request goes on without a route
        builder.bridge.health.error("django.route", exc)


def after_response(request: Any) -> None:
    """The signed-in user's id, when the request loaded the user (reading `request.user`
    otherwise would cost a session and a user query)."""
    builder = current.get()
    if builder is None or not builder.bridge.settings.wide_events_user_id:
        return
    try:
        user = request.__dict__.get("user")
        wrapped = getattr(user, "_wrapped", user)
        if wrapped is None or wrapped is empty:  # no auth middleware, or never loaded
            return
        if getattr(wrapped, "is_authenticated", False) is True:
            fields = builder.fields
            if fields is None:
                fields = builder.fields = {}
            fields[".user.id"] = str(wrapped.pk)
    except Exception as exc:  # noqa: BLE001
        builder.bridge.health.error("django.user", exc)
