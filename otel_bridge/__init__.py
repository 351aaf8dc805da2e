"""otel_bridge: OpenTelemetry for ASGI/WSGI apps, seen through expvar, Pinba, wide events and Cronitor."""

from __future__ import annotations

__version__ = "0.1.0"

from otel_bridge._instrument import instrument, instrument_wsgi  # noqa: E402
from otel_bridge.config import Settings  # noqa: E402
from otel_bridge.errors import ConfigError  # noqa: E402
from otel_bridge.record import RecordExporter, RequestRecord, Timer  # noqa: E402
from otel_bridge.timers import timer  # noqa: E402

__all__ = [
    "ConfigError",
    "RecordExporter",
    "RequestRecord",
    "Settings",
    "Timer",
    "instrument",
    "instrument_wsgi",
    "timer",
]
