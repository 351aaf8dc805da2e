"""Django: every request recorded with its URL pattern, database queries, view and user.

Add ``"otel_bridge.django"`` to ``INSTALLED_APPS`` and wrap the handler::

    application = otel_bridge.instrument_wsgi(get_wsgi_application())   # wsgi.py
    application = otel_bridge.instrument(get_asgi_application())        # asgi.py

and, for Django's test client (or a handler something else wrapped first), put
``"otel_bridge.django.middleware.OtelBridgeMiddleware"`` first in ``MIDDLEWARE``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["force_flush", "path", "re_path"]


def force_flush(timeout_millis: int = 10_000) -> bool:
    """Hand every request recorded so far (by wrapped handlers and the middleware) to the
    views: call it in a test before reading a wide-event file or `/debug/vars`. False on
    timeout."""
    from otel_bridge.django._bridges import force_flush as flush

    return flush(timeout_millis)


def path(
    route: str, view: Any, kwargs: Any = None, name: str | None = None, *, healthcheck: Any = None
) -> Any:
    """`django.urls.path`, plus ``healthcheck=True`` (or a dict of options) to make the URL a
    Cronitor check monitor. Raises HealthcheckError for options Cronitor would refuse."""
    from django.urls import path as django_path

    from otel_bridge.django._healthchecks import mark

    return mark(django_path(route, view, kwargs, name), healthcheck)


def re_path(
    route: str, view: Any, kwargs: Any = None, name: str | None = None, *, healthcheck: Any = None
) -> Any:
    """`django.urls.re_path` with ``healthcheck=`` as in `path`."""
    from django.urls import re_path as django_re_path

    from otel_bridge.django._healthchecks import mark

    return mark(django_re_path(route, view, kwargs, name), healthcheck)
