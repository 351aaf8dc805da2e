"""otel_bridge: OpenTelemetry for ASGI/WSGI apps, as expvar, Pinba, wide events and Cronitor."""

from __future__ import annotations

from otel_bridge import expvar as expvar  # a module: otel_bridge.expvar.Int("orders")
from otel_bridge import wide_event as wide_event  # a module: otel_bridge.wide_event.set()
from otel_bridge._instrument import instrument, instrument_wsgi
from otel_bridge._version import __version__ as __version__
from otel_bridge.config import Settings
from otel_bridge.errors import ConfigError
from otel_bridge.exporters.cronitor._derive import healthcheck
from otel_bridge.exporters.expvar._vars import ExpVar
from otel_bridge.jobs import ScriptMonitor
from otel_bridge.record import RecordExporter, RequestRecord, Timer
from otel_bridge.registry import View, ViewContext, ViewParts
from otel_bridge.tags import tag
from otel_bridge.timers import timer

__all__ = [
    "ConfigError",
    "ExpVar",
    "RecordExporter",
    "RequestRecord",
    "ScriptMonitor",
    "Settings",
    "Timer",
    "View",
    "ViewContext",
    "ViewParts",
    "healthcheck",
    "instrument",
    "instrument_wsgi",
    "tag",
    "timer",
]
