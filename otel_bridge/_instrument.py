"""`instrument()` and `instrument_wsgi()`: the one call that wraps an application."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry import metrics, trace

from otel_bridge.asgi import OtelBridgeASGIMiddleware
from otel_bridge.bridge import Bridge
from otel_bridge.config import Settings
from otel_bridge.record import RecordExporter
from otel_bridge.registry import Scrub, View, ViewContext, build_bridge
from otel_bridge.types import ASGIApp, WSGIApp
from otel_bridge.wsgi import OtelBridgeWSGIMiddleware

__all__ = ["instrument", "instrument_wsgi"]


def _settings(
    app: Any,
    settings: Settings | None,
    exporters: str | Iterable[str] | None,
    service_name: str | None,
    excluded_urls: str | Iterable[str] | None,
) -> Settings:
    if settings is not None:
        base = settings
    else:
        from otel_bridge.django._settings import django_environ, is_django_handler

        # Django: `OTEL_BRIDGE` in its settings goes over the environment.
        base = Settings.from_env(django_environ() if is_django_handler(app) else None)
    return base.replace(exporters=exporters, service_name=service_name, excluded_urls=excluded_urls)


def _bridge(
    app: Any,
    settings: Settings,
    tracer_provider: trace.TracerProvider | None,
    meter_provider: metrics.MeterProvider | None,
    record_exporters: Sequence[RecordExporter],
    wide_event_scrub: Scrub | None = None,
    views: Sequence[View] = (),
) -> Bridge:
    from otel_bridge.django._healthchecks import discover_for
    from otel_bridge.django._settings import django_handler

    handler = django_handler(app)
    if handler is not None:
        from otel_bridge.django._handler import hook

        hook(handler)  # Django's URL pattern and view, without a MIDDLEWARE entry
    from otel_bridge._flask import flask_app

    flask = flask_app(app)
    if flask is not None:
        from otel_bridge._flask import hook as hook_flask

        hook_flask(flask)  # Flask's URL rule as the route
    context = ViewContext(settings, app, wide_event_scrub, discover_for(app))
    return build_bridge(context, tracer_provider, meter_provider, record_exporters, views)


def _follow_django_settings(
    wrapper: Any, app: Any, build: Callable[[], Bridge], record_exporters: Sequence[RecordExporter]
) -> None:
    # A Django handler configured from `OTEL_BRIDGE`: rebuilt when override_settings changes it.
    from otel_bridge.django._settings import is_django_handler

    if is_django_handler(app):
        from otel_bridge.django._bridges import register

        register(wrapper, build, tuple(record_exporters))


def _takes(app: Any) -> int | None:
    """How many positional arguments calling `app` requires; None when that cannot be told
    (no signature, or ``*args``)."""
    try:
        parameters = inspect.signature(app).parameters.values()
    except (TypeError, ValueError):
        return None
    required = 0
    for parameter in parameters:
        if parameter.kind is parameter.VAR_POSITIONAL:
            return None
        if (
            parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
            and parameter.default is parameter.empty
        ):
            required += 1
    return required


def _is_async(app: Any) -> bool:
    method = inspect.getattr_static(app, "__call__", None)
    return inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(method)


def _check_interface(app: Any, wsgi: bool) -> None:
    """Refuse, at startup, an app that is certainly of the other interface: it would fail
    every request. Uncertain shapes (``*args``, no signature) pass."""
    if wsgi and _is_async(app) and _takes(app) == 3:
        raise TypeError(
            f"otel_bridge.instrument_wsgi() wraps a WSGI app; {app!r} is called as (scope, "
            "receive, send), an ASGI app: wrap it with otel_bridge.instrument()"
        )
    if not wsgi and not _is_async(app) and _takes(app) == 2:
        raise TypeError(
            f"otel_bridge.instrument() wraps an ASGI app; {app!r} is called as (environ, "
            "start_response), a WSGI app: wrap it with otel_bridge.instrument_wsgi()"
        )


def _wrap(
    wrapper_class: Any,
    app: Any,
    settings: Settings | None,
    exporters: str | Iterable[str] | None,
    service_name: str | None,
    excluded_urls: str | Iterable[str] | None,
    tracer_provider: trace.TracerProvider | None,
    meter_provider: metrics.MeterProvider | None,
    record_exporters: Sequence[RecordExporter],
    wide_event_scrub: Callable[[dict[str, Any]], dict[str, Any] | None] | None,
    views: Sequence[View] = (),
) -> Any:
    _check_interface(app, wrapper_class is OtelBridgeWSGIMiddleware)
    resolved = _settings(app, settings, exporters, service_name, excluded_urls)
    if resolved.sdk_disabled:
        return app

    def build(current: Settings | None = None) -> Bridge:
        return _bridge(
            app,
            current or _settings(app, settings, exporters, service_name, excluded_urls),
            tracer_provider,
            meter_provider,
            record_exporters,
            wide_event_scrub,
            views,
        )

    wrapper = wrapper_class(app, bridge=build(resolved))
    if settings is None:
        _follow_django_settings(wrapper, app, build, record_exporters)
    return wrapper


def instrument(
    app: ASGIApp,
    *,
    settings: Settings | None = None,
    exporters: str | Iterable[str] | None = None,
    service_name: str | None = None,
    excluded_urls: str | Iterable[str] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    record_exporters: Sequence[RecordExporter] = (),
    wide_event_scrub: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    views: Sequence[View] = (),
) -> ASGIApp:
    """Wrap an ASGI application so every HTTP request is recorded.

    Args:
        app: any ASGI 3 application (Starlette, FastAPI, Django's ASGI handler…).
        settings: configuration; default `Settings.from_env()`.
        exporters: views to turn on, overriding `OTEL_BRIDGE_EXPORTERS`.
        service_name: overrides `OTEL_SERVICE_NAME`.
        excluded_urls: overrides `OTEL_PYTHON_EXCLUDED_URLS`.
        tracer_provider: provider to use instead of the global one.
        meter_provider: provider to use instead of the global one.
        record_exporters: extra `RecordExporter`s (custom views, `otel_bridge.testing`).
        wide_event_scrub: called with every wide event before it is written; returns it
            (changed or not) or None to drop it.
        views: your own views, each a function of `otel_bridge.ViewContext` returning
            `otel_bridge.ViewParts`, as the built-in ones are (`otel_bridge.registry`).

    Returns:
        The wrapped application; its ``bridge`` attribute has `force_flush()`/`shutdown()`.
        With ``OTEL_SDK_DISABLED=true`` the app itself, unchanged.

    Raises:
        ConfigError: an environment variable or argument is invalid (raised here, at startup).
        TypeError: `app` is certainly a WSGI app (called as ``(environ, start_response)``):
            `instrument_wsgi()` wraps those.
    """
    wrapped: ASGIApp = _wrap(
        OtelBridgeASGIMiddleware,
        app,
        settings,
        exporters,
        service_name,
        excluded_urls,
        tracer_provider,
        meter_provider,
        record_exporters,
        wide_event_scrub,
        views,
    )
    return wrapped


def instrument_wsgi(
    app: WSGIApp,
    *,
    settings: Settings | None = None,
    exporters: str | Iterable[str] | None = None,
    service_name: str | None = None,
    excluded_urls: str | Iterable[str] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    record_exporters: Sequence[RecordExporter] = (),
    wide_event_scrub: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    views: Sequence[View] = (),
) -> WSGIApp:
    """Wrap a WSGI application so every request is recorded; arguments as for `instrument()`.

    Raises:
        ConfigError: an environment variable or argument is invalid (raised here, at startup).
        TypeError: `app` is certainly an ASGI app (``async``, called as ``(scope, receive,
            send)``): `instrument()` wraps those.
    """
    wrapped_wsgi: WSGIApp = _wrap(
        OtelBridgeWSGIMiddleware,
        app,
        settings,
        exporters,
        service_name,
        excluded_urls,
        tracer_provider,
        meter_provider,
        record_exporters,
        wide_event_scrub,
        views,
    )
    return wrapped_wsgi
