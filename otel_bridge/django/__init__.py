"""Django: the route template of every request, for apps wrapped by `instrument_wsgi()` or
`instrument()`.

Add ``"otel_bridge.django"`` to ``INSTALLED_APPS`` and
``"otel_bridge.django.middleware.RouteMiddleware"`` to ``MIDDLEWARE``, and wrap the handler::

    application = otel_bridge.instrument_wsgi(get_wsgi_application())   # wsgi.py
    application = otel_bridge.instrument(get_asgi_application())        # asgi.py
"""

from __future__ import annotations

from typing import Any

__all__ = ["path", "re_path"]


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
