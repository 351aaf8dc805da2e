"""The view registry, and the assembly of a bridge from the settings.

A view enters the same way whether it is built in or the user's own: a function that takes the
`ViewContext` (settings, app, options) and returns `ViewParts`, what it contributes — record
consumers, metric readers, something the wrappers serve, things to start once the bridge
exists. `VIEWS` maps the names `OTEL_BRIDGE_EXPORTERS` accepts to the built-in ones; nothing
here tests a view's name.
"""

from __future__ import annotations

import atexit
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics.export import MetricReader

from otel_bridge.bridge import SHUTDOWN_TIMEOUT_MS, Bridge
from otel_bridge.config import Settings
from otel_bridge.record import RecordExporter

__all__ = ["VIEWS", "View", "ViewContext", "ViewParts", "build_bridge"]

Scrub = Callable[[dict[str, Any]], dict[str, Any] | None]


@dataclass(frozen=True)
class ViewContext:
    """What a view is built from."""

    settings: Settings
    app: Any = None
    wide_event_scrub: Scrub | None = None
    # More healthchecks, for an app whose routes the Cronitor view cannot read (Django).
    discover_healthchecks: Callable[[], list[Any]] | None = None


@dataclass
class ViewParts:
    """What one view contributes to a bridge."""

    consumers: list[RecordExporter] = field(default_factory=list)
    readers: list[MetricReader] = field(default_factory=list)
    # Served by the wrappers at its own path (`respond()`), told of the bridge (`attach()`).
    served: Any = None
    # Called once the bridge exists (a startup sync, say); never block or raise.
    start: list[Callable[[], None]] = field(default_factory=list)
    # Shows figures of the whole server: join the workers' shared scoreboard where no master
    # owns one (uvicorn --workers).
    server_wide: bool = False


View = Callable[[ViewContext], ViewParts]


def _expvar(context: ViewContext) -> ViewParts:
    from otel_bridge.exporters.expvar import ExpvarEndpoint
    from otel_bridge.exporters.expvar._stats import ScoreboardWriter

    view = ExpvarEndpoint.from_settings(context.settings)
    return ViewParts(
        consumers=[view.stats, ScoreboardWriter()],
        readers=[view.reader],
        served=view,
        server_wide=True,
    )


def _pinba(context: ViewContext) -> ViewParts:
    from otel_bridge.exporters.pinba import PinbaExporter

    return ViewParts(consumers=[PinbaExporter.from_settings(context.settings)])


def _wide_events(context: ViewContext) -> ViewParts:
    from otel_bridge.exporters.wide_events import WideEventsExporter

    provider = counted = None
    if context.settings.wide_events_sink == "otlp":
        from otel_bridge._otel import logger_provider_for_events

        provider, counted = logger_provider_for_events(context.settings)
    exporter = WideEventsExporter.from_settings(
        context.settings, scrub=context.wide_event_scrub, logger_provider=provider
    )
    if counted is not None:
        exporter.counted.append(counted)  # its failures count in the bridge's health
    return ViewParts(consumers=[exporter], server_wide=True)


def _cronitor(context: ViewContext) -> ViewParts:
    from otel_bridge.exporters.cronitor import CronitorSync

    sync = CronitorSync(context.settings, context.app, context.discover_healthchecks)
    return ViewParts(consumers=[sync], start=[sync.start])


# The views OTEL_BRIDGE_EXPORTERS names, in its order.
VIEWS: dict[str, View] = {
    "expvar": _expvar,
    "pinba": _pinba,
    "wide_events": _wide_events,
    "cronitor": _cronitor,
}


def _join_supervised(bridge: Bridge) -> None:
    # Under `uvicorn --workers` no master runs our hooks: the workers share a scoreboard of
    # their own, so /debug/vars can still show server-wide totals.
    from otel_bridge._scoreboard import current, set_current
    from otel_bridge._supervised import join_supervised, leave_supervised

    if current() is not None:
        return
    claim = join_supervised()
    if claim is None:
        return
    set_current(*claim)
    bridge.on_shutdown.append(lambda: leave_supervised(*claim))


def build_bridge(
    context: ViewContext,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    record_exporters: Sequence[RecordExporter] = (),
    views: Sequence[View] = (),
) -> Bridge:
    """A bridge with the views `context.settings` names, then `views` (the user's own), then
    `record_exporters`; exported at interpreter exit."""
    parts = [VIEWS[name](context) for name in context.settings.exporters]
    parts += [view(context) for view in views]
    served = [part.served for part in parts if part.served is not None]
    bridge = Bridge(
        context.settings,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        exporters=[*(c for part in parts for c in part.consumers), *record_exporters],
        metric_readers=[reader for part in parts for reader in part.readers],
    )
    for view in served:
        view.attach(bridge)
    if served:
        bridge.expvar = served[0]  # the wrappers serve one endpoint
    if any(part.server_wide for part in parts):
        _join_supervised(bridge)
    for part in parts:
        for start in part.start:
            start()
    # Export what is still queued when the interpreter exits (WSGI servers have no lifespan).
    reference = weakref.ref(bridge)

    def shutdown_at_exit() -> None:
        alive = reference()
        if alive is not None:
            alive.shutdown(SHUTDOWN_TIMEOUT_MS)

    atexit.register(shutdown_at_exit)
    return bridge
