"""What Django knows about a request, handed to the request being recorded: the matched URL
pattern as the route, the view's name, and the signed-in user. Used by the middleware and by
the hooks a wrapper puts on Django's handler (otel_bridge.django._handler)."""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.utils.functional import empty

from otel_bridge._context import current

__all__ = ["after_response", "follow_view", "record_match", "route_template"]


def route_template(resolver_match: Any) -> str | None:
    """The template as `http.route` wants it: ``users/<int:uid>/`` → ``/users/<int:uid>/``.

    Patterns from `re_path()` are written one way wherever they stand: a leading ``/`` and no
    anchors (Django keeps a top-level pattern's ``^`` and every ``$``, and drops an included
    one's ``^``), so ``^shop/(?P<year>[0-9]{4})/$`` is ``/shop/(?P<year>[0-9]{4})/``. Never
    raises.
    """
    route = getattr(resolver_match, "route", None)
    if not isinstance(route, str):
        return None
    route = route.removeprefix("^")
    if route.endswith(r"\Z") and not route.endswith(r"\\Z"):
        route = route[:-2]
    elif route.endswith("$") and not route.endswith(r"\$"):
        route = route[:-1]
    return "/" + route


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


def follow_view(match: Any) -> Any:
    """Under ASGI, with timeout events on: note where the view runs, for a timeout's stack;
    the callable Django should run instead of ``match.func``, or None for ``match.func``.

    Django's ASGI handler serves the request in a task of its own and waits on it, so the
    server's task only shows ``asyncio.wait``. An async view runs in the task resolving the URL
    (noted now); a sync view in a thread of asgiref's, noted by a thin wrapper around the view
    (it keeps the view's attributes: ``csrf_exempt``, ``view_class``…). The wrapper is only
    what Django calls: ``request.resolver_match.func`` stays the view. Never raises."""
    builder = current.get()
    if builder is None or builder.task is None:
        return None  # WSGI (the request's thread runs the view), or no timeout events
    try:
        builder.view_task = asyncio.current_task()
        view = match.func
        if iscoroutinefunction(view):
            return None

        @functools.wraps(view)
        def in_thread(*args: Any, **kwargs: Any) -> Any:
            builder.view_thread = threading.get_ident()
            try:
                return view(*args, **kwargs)
            finally:
                builder.view_thread = None

        return in_thread
    except Exception as exc:  # noqa: BLE001 - the request goes on; its stack is the handler's
        builder.bridge.health.error("django.view", exc)
        return None


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
