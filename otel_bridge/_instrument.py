"""`instrument()` and `instrument_wsgi()`: the one call that wraps an application."""

from __future__ import annotations

import atexit
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace

from otel_bridge.asgi import SHUTDOWN_TIMEOUT_MS, OtelBridgeMiddleware
from otel_bridge.bridge import Bridge
from otel_bridge.config import Settings
from otel_bridge.record import RecordExporter
from otel_bridge.types import ASGIApp, WSGIApp
from otel_bridge.wsgi import OtelBridgeWSGIMiddleware

if TYPE_CHECKING:
    from otel_bridge.exporters.expvar import ExpvarView

__all__ = ["instrument", "instrument_wsgi"]


def _expvar_view(settings: Settings) -> ExpvarView:
    from otel_bridge.exporters.expvar import ExpvarView

    return ExpvarView.from_settings(settings)


def _pinba(settings: Settings) -> RecordExporter:
    from otel_bridge.exporters.pinba import PinbaExporter

    return PinbaExporter.from_settings(settings)


# The views OTEL_BRIDGE_EXPORTERS can name, built from the settings when the app is wrapped.
def _wide_events(settings: Settings) -> RecordExporter:
    from otel_bridge.exporters.wide_events import WideEventsExporter

    return WideEventsExporter.from_settings(settings)


# (expvar is not a plain RecordExporter: it is also served by the wrappers, see _bridge.)
VIEWS: dict[str, Callable[[Settings], RecordExporter]] = {
    "pinba": _pinba,
    "wide_events": _wide_events,
}


def _join_supervised(bridge: Bridge) -> None:
    # Under `uvicorn --workers` no master runs our hooks: the workers share a scoreboard of
    # their own, so /debug/vars can still show server-wide totals.
    from otel_bridge._scoreboard import current, join_supervised, leave_supervised, set_current

    if current() is not None:
        return
    claim = join_supervised()
    if claim is None:
        return
    set_current(*claim)
    bridge.on_shutdown.append(lambda: leave_supervised(*claim))


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
    wide_event_scrub: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
) -> Bridge:
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
    views: list[RecordExporter] = []
    for name in settings.exporters:
        if name == "wide_events" and wide_event_scrub is not None:
            from otel_bridge.exporters.wide_events import WideEventsExporter

            views.append(WideEventsExporter.from_settings(settings, scrub=wide_event_scrub))
        elif name == "cronitor":
            from otel_bridge.exporters.cronitor import CronitorSync

            views.append(CronitorSync(settings, app))
        elif name in VIEWS:
            views.append(VIEWS[name](settings))
    expvar = _expvar_view(settings) if "expvar" in settings.exporters else None
    if expvar is not None:
        from otel_bridge.exporters.expvar._stats import ScoreboardWriter

        views.extend((expvar.stats, ScoreboardWriter()))
    bridge = Bridge(
        settings,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        exporters=[*views, *record_exporters],
        metric_readers=[expvar.reader] if expvar is not None else [],
    )
    if expvar is not None:
        expvar.attach(bridge)
        bridge.expvar = expvar
    if expvar is not None or "wide_events" in settings.exporters:
        _join_supervised(bridge)
    for view in views:
        start = getattr(view, "start", None)
        if view.name == "cronitor" and start is not None:
            start()
    # Export what is still queued when the interpreter exits (WSGI servers have no lifespan).
    reference = weakref.ref(bridge)

    def shutdown_at_exit() -> None:
        alive = reference()
        if alive is not None:
            alive.shutdown(SHUTDOWN_TIMEOUT_MS)

    atexit.register(shutdown_at_exit)
    return bridge


def _follow_django_settings(
    wrapper: Any, app: Any, build: Callable[[], Bridge], record_exporters: Sequence[RecordExporter]
) -> None:
    # A Django handler configured from `OTEL_BRIDGE`: rebuilt when override_settings changes it.
    from otel_bridge.django._settings import is_django_handler

    if is_django_handler(app):
        from otel_bridge.django._live import register

        register(wrapper, build, tuple(record_exporters))


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
) -> Any:
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

    Returns:
        The wrapped application; its ``bridge`` attribute has `force_flush()`/`shutdown()`.
        With ``OTEL_SDK_DISABLED=true`` the app itself, unchanged.

    Raises:
        ConfigError: an environment variable or argument is invalid (raised here, at startup).
    """
    wrapped: ASGIApp = _wrap(
        OtelBridgeMiddleware,
        app,
        settings,
        exporters,
        service_name,
        excluded_urls,
        tracer_provider,
        meter_provider,
        record_exporters,
        wide_event_scrub,
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
) -> WSGIApp:
    """Wrap a WSGI application so every request is recorded; arguments as for `instrument()`.

    Raises:
        ConfigError: an environment variable or argument is invalid (raised here, at startup).
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
    )
    return wrapped_wsgi
